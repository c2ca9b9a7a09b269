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
import glob
import os
import signal
import threading
from collections.abc import Iterator

#: Write ends of the watch pipes this (parent) process holds: a worker forked later inherits them all and
#: closes them, so no worker keeps another pool's workers alive.
_WRITE_ENDS: set[int] = set()
#: In a worker: held while a hand-over file is created and written, and by the watch thread before it
#: deletes them, so a file is never half-written after the sweep nor created after it.
_HANDOVER = threading.Lock()


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

    SIGINT and SIGHUP come from the terminal to the whole process group; the parent handles them and stops
    the pool (a worker printing its own traceback would only add noise). SIGTERM keeps its default: the
    pool itself uses it to end workers of a broken pool.
    """
    global _HANDOVER
    _HANDOVER = threading.Lock()  # the parent's copy might have been held by another of its threads
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (albstats.shutdown), inherited by fork
    for fd in _WRITE_ENDS:  # inherited by fork: only the parent may hold them
        with contextlib.suppress(OSError):
            os.close(fd)
    _WRITE_ENDS.clear()
    threading.Thread(target=_watch, args=(read_fd, spill, prefix), name="albstats-parent-watch", daemon=True).start()


def _watch(read_fd: int, spill: str, prefix: str) -> None:
    """Wait for end-of-file on the watch pipe, then remove the run's hand-over files and exit."""
    while True:
        try:
            if not os.read(read_fd, 1):
                break
        except InterruptedError:  # pragma: no cover - retried by Python itself since PEP 475
            continue
        except OSError:
            break
    _HANDOVER.acquire()  # never released: no new hand-over file from now on
    remove_handover_files(spill, prefix)
    os._exit(1)


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
