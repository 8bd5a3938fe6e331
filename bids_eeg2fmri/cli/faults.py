"""Failures that are not the input's fault: full disks, unwritable folders, signals, lost parents.

- The exit code of a crashed step's cause is read from its crash file by
  :mod:`bids_eeg2fmri.crashfiles` (no space → 74, no permission or a read-only file system → 73).
- :func:`handle_signals` turns SIGINT/SIGTERM into :class:`Interrupted` in the main process;
  :func:`stop_workers` then ends every process the run started.
- :func:`guarded_multiproc` is nipype's MultiProc whose workers ignore SIGINT (the main process
  stops them) and exit on their own when the main process disappears (``kill -9``), instead of
  running on under PID 1 and writing into the work dir.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# How often a worker checks that the main process is still there.
WATCHDOG_S = 0.5


# ----------------------------------------------------------------------------- signals
class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the main process; ``code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.code = 128 + signum


@contextmanager
def handle_signals() -> Iterator[None]:
    """Raise :class:`Interrupted` at the first SIGINT/SIGTERM; later ones are ignored while the
    run stops and exits (a second Ctrl-C, or ``timeout`` following SIGTERM up, must not abort the
    cleanup). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []
    # Python runs pending handlers in signal-number order, not arrival order: SIGTERM then SIGINT
    # while the main thread is busy in C code would look like SIGINT first. The wake-up fd gets
    # each signal's number as it arrives, so the first one sets the exit code.
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def handler(signum, frame):
        if stopping:
            return
        try:
            arrived = os.read(read_fd, 64)
        except BlockingIOError:
            arrived = b""
        first = next((n for n in arrived if n in (signal.SIGINT, signal.SIGTERM)), signum)
        stopping.append(first)
        raise Interrupted(first)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            # Once stopping, a late second signal must not kill the exiting process (Python
            # would re-raise it as its exit status, losing 130/143).
            signal.signal(s, signal.SIG_IGN if stopping else h)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_fd)
        os.close(write_fd)


def descendants(pid: int | None = None) -> list[int]:
    """Process ids below ``pid`` (default: this process), children first, from ``/proc``."""
    pid = os.getpid() if pid is None else pid
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may hold spaces: ppid follows the last ')'.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        out.extend(kids)
        frontier = kids
    return out


def stop_workers(grace_s: float = 3.0) -> None:
    """SIGTERM every process this one started (and theirs), then SIGKILL what is left."""
    pids = descendants()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass  # already gone, or not ours to stop
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if not pids:
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: only /proc can tell
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ----------------------------------------------------------------------------- workers
def worker_initializer(cwd: str, parent: int) -> None:
    """Set up a pool worker: nipype's set-up, SIGINT ignored, and exit when ``parent`` is gone."""
    from nipype.pipeline.plugins.multiproc import process_initializer

    process_initializer(cwd)
    # A Ctrl-C reaches the whole process group; the main process stops the workers itself, so
    # nodes are not torn down half-way with a KeyboardInterrupt traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the main process's handler; SIGTERM from stop_workers must end it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog thread alone notices
    # Workers are children of the pool's fork server, itself a child of the main process: a
    # worker ends when its fork server goes (PR_SET_PDEATHSIG above, or its parent changing) or
    # when the main process is gone.
    direct = os.getppid()
    if not _alive(parent):
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, direct), daemon=True,
                     name="parent-watchdog").start()


def _watch_parent(parent: int, direct: int) -> None:
    while os.getppid() == direct and _alive(parent):
        time.sleep(WATCHDOG_S)
    os._exit(1)


def guarded_multiproc(plugin_args: dict):
    """nipype's MultiProc plugin whose pool runs :func:`worker_initializer` in every worker."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from nipype.pipeline.plugins.multiproc import MultiProcPlugin

    class GuardedMultiProc(MultiProcPlugin):
        def __init__(self, plugin_args=None):
            super().__init__(plugin_args=plugin_args)
            # The pool nipype made has started no process yet; replace it by one whose workers
            # watch their parent.
            self.pool.shutdown(wait=False)
            self.pool = ProcessPoolExecutor(
                max_workers=self.processors, initializer=worker_initializer,
                initargs=(self._cwd, os.getpid()),
                mp_context=mp.get_context(self.plugin_args.get("mp_context")))

    return GuardedMultiProc(plugin_args=plugin_args)
