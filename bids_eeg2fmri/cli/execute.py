"""Run a nipype workflow with the configured resources and report failed runs in one line each."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExitCode

log = logging.getLogger("bids_eeg2fmri")

# The default 2 s polling adds about 2 s per node on small graphs; 0.1 s costs nothing measurable.
POLL_SLEEP_S = 0.1


@dataclass
class Failure:
    """One crashed node: where it ran and the last line of its error."""

    node: str
    message: str
    crash_file: Path
    user_error: bool

    def oneline(self) -> str:
        """``<run>: <error> (crash file <path>)`` on one line."""
        return f"{self.node}: {self.message} (crash file {self.crash_file})"


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
        Parallel processes (0 = all cores); 1 runs serially.
    mem_gb
        Memory the scheduler may plan with (0 = 90 % of the machine).
    stop_on_first_crash
        Stop at the first failure instead of finishing the independent runs.

    Returns
    -------
    code, failures
        ``OK``; ``DATA`` when every failure was a bad input file; ``FAILURE`` otherwise; and one
        :class:`Failure` per crashed node.
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
    # nipype resets its loggers from this section when it starts: keep per-node chatter for --debug.
    level = "DEBUG" if log.isEnabledFor(logging.DEBUG) else "WARNING"
    wf.config["logging"] = {"workflow_level": level, "interface_level": level, "utils_level": level}
    n_procs = nprocs or os.cpu_count() or 1
    started = time.time()
    try:
        if n_procs == 1:
            wf.run(plugin="Linear")
        else:
            args = {"n_procs": n_procs, "raise_insufficient": False}
            if mem_gb:
                args["memory_gb"] = mem_gb
            wf.run(plugin="MultiProc", plugin_args=args)
    except RuntimeError as exc:
        failures = read_crash_files(crash_dir, since=started)
        if not failures:
            log.error("the workflow failed: %s", exc)
            return ExitCode.FAILURE, []
        code = ExitCode.DATA if all(f.user_error for f in failures) else ExitCode.FAILURE
        return code, failures
    return ExitCode.OK, []


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*Error|\w*Exception)\b:?\s*(.*)$")


def read_crash_files(crash_dir: Path, since: float = 0.0) -> list[Failure]:
    """Parse nipype text crash files written after ``since`` (epoch seconds)."""
    failures = []
    for path in sorted(crash_dir.glob("crash-*.txt")):
        if path.stat().st_mtime < since - 1:
            continue
        text = path.read_text(errors="replace")
        node = re.search(r"^Node: (.+)$", text, flags=re.MULTILINE)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        error_lines = [m for m in map(_ERROR_LINE.match, lines) if m]
        last = error_lines[-1] if error_lines else None
        message = (f"{last.group(1)}: {last.group(2)}" if last else lines[-1]) if lines else "unknown"
        user = any(name in text for name in ("bids_eeg2fmri.errors.DataError",
                                             "bids_eeg2fmri.errors.UserError",
                                             "bids_eeg2fmri.errors.UsageError"))
        if user and last:
            message = last.group(2)
        failures.append(Failure(_run_of(node.group(1)) if node else path.name, message, path, user))
    return failures


def _run_of(node: str) -> str:
    """``top_wf.sub_01_task_rest_run_1_fmri.prepare`` → ``sub_01_task_rest_run_1_fmri.prepare``."""
    parts = node.split(".")
    return ".".join(parts[1:]) if len(parts) > 2 else node
