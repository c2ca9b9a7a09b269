"""SIGTERM and SIGHUP take the same path as Ctrl-C: an exception, so every ``finally`` and context manager runs.

``timeout``, ``kill`` and a systemd stop send SIGTERM; a closed terminal or SSH session sends SIGHUP. Python
handles only SIGINT (as :class:`KeyboardInterrupt`); left at their default, the other two end the process
at once, and its parse workers, shared-memory hand-over files, ``.part`` outputs and DuckDB temporary
folders stay behind. :func:`install` (called by the ``albstats`` entry point, never at import: a library
must not change its host's signal handling) makes them raise :class:`Terminated`, a subclass of
:class:`KeyboardInterrupt`, so the cleanup written for Ctrl-C is the cleanup for all three.

Only the first signal raises. A second one while the first is being cleaned up is noted and ignored, so
that a clean-up (stopping workers, deleting temporary files: well under a second) is never cut short
half-way; SIGKILL stops the process at once, and its workers then exit by themselves
(:mod:`albstats.parsing.workers`).

An exception raised at an arbitrary point is only as safe as the code it lands in. Two places are avoided:
code that cannot let it propagate (``os.fork``'s hooks, finalizers: Python prints "Exception ignored" and
carries on), where the signal is delivered again a moment later; and the standard library's process-pool,
multiprocessing, logging and weakref code, where it would leave registries half-updated: there it waits
(10 ms at a time) until the main thread is back in albstats or in a blocking wait.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import time
from types import FrameType
from typing import Any

#: The signals handled like SIGINT. SIGINT itself keeps Python's own handler.
SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_received: int | None = None
#: Set when the exception was swallowed before it could propagate (see :func:`_unraisable`).
_again = False
_previous_hook = sys.unraisablehook


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by ``signum`` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for "ended by signal N": 128 + N (143 for SIGTERM, 129 for SIGHUP)."""
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    global _received, _again
    if _received is None:
        _received = signum
    elif not _again:
        return  # already stopping: let the clean-up finish
    if _fragile(frame):  # a moment later, once out of there
        _again = True
        _thread.start_new_thread(_resignal, (_received,))
        return
    _again = False
    raise Terminated(_received)


#: Modules whose code an exception must not cut through half-way: process start and stop, finalizers and
#: fork hooks. Cut there, they leave pools and registries inconsistent, and say so with tracebacks.
_FRAGILE = ("multiprocessing", "concurrent.futures.process", "logging", "weakref", "atexit")


def _fragile(frame: FrameType | None) -> bool:
    """Whether the main thread is running (or was called from) code of :data:`_FRAGILE`. Waiting for a
    result (``Future.result``) is not: that is where a signal should stop a parse."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_FRAGILE):
            return True
        frame = frame.f_back
    return False


def _unraisable(info: Any) -> None:
    """Python swallows an exception raised where it cannot propagate: in a ``__del__``, a weakref callback,
    or the hooks ``os.fork`` runs in the parent (a signal during a worker's start landed there). Such a
    Terminated is delivered again, at the next point where it can propagate."""
    global _again
    if isinstance(info.exc_value, Terminated) and _received is not None:
        _again = True
        # a moment later, from another thread (a signal raised here would be handled, and swallowed, right here;
        # threading.Thread.start would wait for the thread, and be interrupted the same way)
        _thread.start_new_thread(_resignal, (_received,))
        return
    _previous_hook(info)


def _resignal(signum: int) -> None:
    time.sleep(0.01)
    os.kill(os.getpid(), signum)


def install() -> None:
    """Handle SIGTERM and SIGHUP like SIGINT, in the main thread of a command-line process.

    A signal that was ignored when the process started stays ignored: ``nohup albstats ...`` must survive
    the hang-up it asked to survive (and Python does the same for SIGINT).
    """
    global _previous_hook
    installed = False
    for sig in SIGNALS:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _raise)
            installed = True
    if installed and sys.unraisablehook is not _unraisable:
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable


def received() -> int | None:
    """The number of the SIGTERM or SIGHUP that was caught, if one was (the first, if several)."""
    return _received


def exit_code(exc: BaseException | None = None) -> int | None:
    """The exit code a stop by signal calls for: 128 + the signal caught, 130 for a bare KeyboardInterrupt
    (Ctrl-C), None when no signal stopped the process. Whatever exception the signal turned into on its way
    out (DuckDB reports an interrupted query as a RuntimeError), the signal decides the code."""
    if _received is not None:
        return 128 + _received
    if isinstance(exc, KeyboardInterrupt):
        return 128 + signal.SIGINT
    return None


def describe(code: int) -> str:
    """The one line printed when a signal stopped a command."""
    if code == 128 + signal.SIGINT:
        return "albstats: interrupted"
    try:
        name = signal.Signals(code - 128).name
    except ValueError:
        name = f"signal {code - 128}"
    return f"albstats: stopped by {name}; workers stopped and temporary files removed"
