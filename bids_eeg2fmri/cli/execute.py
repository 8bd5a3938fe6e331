"""Run a nipype workflow with the configured resources and report failed runs in one line each."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..crashfiles import Failure, classify_crash, combined_code, read_crash_files
from ..errors import ExitCode
from .faults import Interrupted, guarded_multiproc, stop_workers

log = logging.getLogger("bids_eeg2fmri")

# The default 2 s polling adds about 2 s per node on small graphs; 0.1 s costs nothing measurable.
POLL_SLEEP_S = 0.1


def execute(wf, *, work_dir: Path, crash_dir: Path, nprocs: int = 0, mem_gb: float = 0.0,
            stop_on_first_crash: bool = False) -> tuple[ExitCode, list[Failure]]:
    """Run ``wf`` in ``work_dir`` (cached, so a rerun resumes) and summarise failures.

    Parameters
    ----------
    wf
        The nipype workflow.
    work_dir
        Intermediate results; a rerun with the same inputs reuses them.
    crash_dir
        Where nipype writes crash files (one text file per failed node).
    nprocs
        Parallel worker processes (0 = all cores); 1 runs the steps one at a time.
    mem_gb
        Memory the scheduler may plan with (0 = 90 % of the machine).
    stop_on_first_crash
        Stop at the first failure instead of finishing the independent runs.

    Returns
    -------
    code, failures
        ``OK``; else the code of the failures' cause (:func:`combined_code`); and one
        :class:`Failure` per crashed node.

    Raises
    ------
    Interrupted
        On SIGINT/SIGTERM, once every worker process has been stopped.
    """
    crash_dir.mkdir(parents=True, exist_ok=True)
    wf.base_dir = os.fspath(work_dir)
    wf.config["execution"].update({
        "crashdump_dir": os.fspath(crash_dir),
        "crashfile_format": "txt",
        "poll_sleep_duration": POLL_SLEEP_S,
        "stop_on_first_crash": stop_on_first_crash,
        "remove_unnecessary_outputs": False,
    })
    wf.config["monitoring"] = {"enabled": False}
    # Without --debug nipype's workflow logger stays silent: it prints every crash with its
    # traceback (the crash file has it) and the failures are summarised below, one line each.
    # Pool workers (fork-server children) take the level from the section below.
    debug = log.isEnabledFor(logging.DEBUG)
    level = "DEBUG" if debug else "CRITICAL"
    logging.getLogger("nipype.workflow").setLevel(level)
    wf.config["logging"] = {"workflow_level": level, "interface_level": level if debug else "WARNING",
                            "utils_level": level if debug else "WARNING"}
    n_procs = nprocs or os.cpu_count() or 1
    started = time.time()
    try:
        # Also for one process: nipype's Linear plugin runs the steps in this process, where it
        # turns a Ctrl-C into one more crashed step and carries on with the next.
        # Workers come from a fork server, a fresh process: a worker forked from a process that
        # has run torch (or any OpenMP code) before can hang in its first torch call (measured:
        # the batched head motion deadlocked when the participant level ran after a training
        # step in one process). fMRIPrep makes the same choice.
        args = {"n_procs": n_procs, "raise_insufficient": False, "mp_context": "forkserver"}
        if mem_gb:
            args["memory_gb"] = mem_gb
        wf.run(plugin=guarded_multiproc(args))
    except Interrupted:
        # The pool reports every future its killed workers leave behind; that is expected here.
        logging.getLogger("concurrent.futures").setLevel(logging.CRITICAL)
        stop_workers()
        raise
    except RuntimeError as exc:
        failures = read_crash_files(crash_dir, since=started)
        if not failures:
            cause = classify_crash(str(exc))
            log.error("the workflow failed: %s", cause[1] if cause else exc)
            return (cause[0] if cause else ExitCode.FAILURE), []
        return combined_code(failures), failures
    return ExitCode.OK, []
