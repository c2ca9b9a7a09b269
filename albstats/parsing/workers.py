"""The lifecycle of parse worker processes: they end with their parent, whatever ends it.

The parent of a :class:`concurrent.futures.ProcessPoolExecutor` that dies without shutting the pool
down (SIGKILL, the OOM killer, or any signal left at its default) leaves its workers blocked forever
on the task queue: forked, each holds both ends of the queue's pipe, so none ever reads end-of-file.
They also keep the parent's stderr open (a ``cmd 2>&1 | tee`` never ends) and their hand-over files in
``/dev/shm`` stay until reboot.

:class:`ParentWatch` is a pipe whose write end only the parent holds; each worker closes its inherited
copy and a thread reads the other end. Nothing is ever written, so the read returns (end-of-file) exactly
when the parent's copy closes: the parent died, however, or chose to stop the pool (:meth:`ParentWatch.stop`
after an error or a signal, without waiting for the groups in progress). The worker then removes the run's
hand-over files and exits at once.

Why a pipe and not ``prctl(PR_SET_PDEATHSIG)``: the death signal fires when the *thread* that forked the
worker exits, not the process (a pool started from a short-lived thread would lose its workers early), it
is Linux-only and needs ctypes, and a signal cannot wait for a hand-over file being written to be complete
before deleting it; the pipe needs only ``os`` and gives the worker a moment to clean up.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: Write ends of the watch pipes this (parent) process holds: a worker forked later inherits them all and
#: closes them, so no worker keeps another pool's workers alive.
_WRITE_ENDS: set[int] = set()
#: In a worker: held while a hand-over file is created and written, and by the watch thread before it
#: deletes them, so a file is never half-written after the sweep nor created after it.
_HANDOVER = threading.Lock()
#: In a worker: held by its main thread except while it runs a task (:func:`task`). The pool's own code
#: (sending a result back, taking the next task) must not be cut short while the parent lives: a result
#: half-written to the pool's pipe would leave the parent's pool waiting for its end forever.
_OUTSIDE_TASK = threading.Lock()
#: Whether this process is a worker (:func:`start_worker` ran in it).
_IN_WORKER = False
#: Seconds a worker told to stop waits for a point where stopping is safe: a worker waiting for its next
#: task never reaches one, and exits at this bound instead (safe too: it is only reading).
STOP_WAIT = 2.0


class ParentWatch:
    """A pipe the parent holds open for as long as its workers should live."""

    def __init__(self) -> None:
        # non-inheritable (close-on-exec): a program the parent runs never holds the workers alive
        self.read_fd, self.write_fd = os.pipe()
        _WRITE_ENDS.add(self.write_fd)

    def stop(self) -> None:
        """Close the parent's end: every worker removes its hand-over files and exits. Idempotent."""
        if self.write_fd >= 0:
            _WRITE_ENDS.discard(self.write_fd)
            with contextlib.suppress(OSError):
                os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        """:meth:`stop`, and the parent's copy of the read end too (after the pool is shut down)."""
        self.stop()
        if self.read_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.read_fd)
            self.read_fd = -1


def start_worker(read_fd: int, spill: str, prefix: str) -> None:
    """In a newly forked worker: signals for the parent only, and exit when the parent is gone.

    SIGINT and SIGHUP (from the terminal) and SIGTERM (``timeout``, systemd) reach the whole process group;
    the parent handles them and stops the pool through the watch pipe, at points where a worker can stop
    without leaving the pool's pipes half-written. A worker ended by the signal itself could do just that.
    """
    global _HANDOVER, _OUTSIDE_TASK, _IN_WORKER
    _IN_WORKER = True
    _HANDOVER = threading.Lock()  # fresh: the parent's copies might have been held by one of its threads
    _OUTSIDE_TASK = threading.Lock()
    _OUTSIDE_TASK.acquire()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    for fd in _WRITE_ENDS:  # inherited by fork: only the parent may hold them
        with contextlib.suppress(OSError):
            os.close(fd)
    _WRITE_ENDS.clear()
    watcher = threading.Thread(
        target=_watch, args=(read_fd, os.getppid(), spill, prefix), name="albstats-parent-watch", daemon=True
    )
    watcher.start()


def _watch(read_fd: int, parent: int, spill: str, prefix: str) -> None:
    """Wait for end-of-file on the watch pipe, then remove the run's hand-over files and exit."""
    while True:
        try:
            if not os.read(read_fd, 1):
                break
        except OSError:
            break
    if os.getppid() == parent:  # the parent stopped the pool: at a safe point (or after STOP_WAIT)
        _OUTSIDE_TASK.acquire(timeout=STOP_WAIT)
    _HANDOVER.acquire(timeout=STOP_WAIT)  # a hand-over file being written is finished, then none is begun
    remove_handover_files(spill, prefix)
    os._exit(1)


def task(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorates the function a worker runs for the parent: only inside it may the worker be stopped at once."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _IN_WORKER:  # called in the parent itself: nothing to guard
            return fn(*args, **kwargs)
        _OUTSIDE_TASK.release()
        try:
            return fn(*args, **kwargs)
        finally:
            _OUTSIDE_TASK.acquire()

    return run


@contextlib.contextmanager
def handover() -> Iterator[None]:
    """Around the creation and writing of one hand-over file in a worker (see :data:`_HANDOVER`)."""
    with _HANDOVER:
        yield


def remove_handover_files(spill: str, prefix: str) -> None:
    """Delete the files of one run (named ``prefix*`` in ``spill``) that nobody will read."""
    for leftover in glob.glob(os.path.join(glob.escape(spill), glob.escape(prefix) + "*")):
        with contextlib.suppress(OSError):
            os.unlink(leftover)
