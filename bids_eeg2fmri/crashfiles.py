"""Reading nipype crash files: which run failed, the last line of its error, the exit code of its
cause.

Shared by the command line (one line per failed run, the exit code) and the participant report
(the failures of each run), which is why it lives outside :mod:`bids_eeg2fmri.cli`.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import NO_PERMISSION, NO_SPACE, ExitCode, describe_errno

# "[Errno 28] No space left on device: '/x'" or "...: 'src' -> 'dst'" (Python; the destination
# is the one that matters), "errno = 28, error message = '...'" (HDF5).
_ERRNO = re.compile(r"\[Errno (\d+)\] ([^:'\n]+)(?::\s*'([^'\n]+)'(?:\s*->\s*'([^'\n]+)')?)?"
                    r"|(?:name = '([^'\n]+)', )?errno = (\d+), error message = '([^'\n]+)'")


def classify_crash(text: str) -> tuple[ExitCode, str] | None:
    """Exit code and line when a crash file's error is a full disk or a permission problem.

    The last operating-system error in the text wins (the traceback's own cause comes last).
    Returns None for any other error.
    """
    found = None
    for m in _ERRNO.finditer(text):
        number = int(m.group(1) or m.group(6))
        if number in NO_SPACE or number in NO_PERMISSION:
            found = describe_errno(number, m.group(4) or m.group(3) or m.group(5),
                                   m.group(2) or m.group(7))
    if found is None and "No space left on device" in text:
        found = describe_errno(errno.ENOSPC, None, "No space left on device")
    return None if found is None else (found.code, found.oneline())


@dataclass
class Failure:
    """One crashed node: where it ran, the last line of its error and the exit code of its cause."""

    node: str
    message: str
    crash_file: Path
    user_error: bool
    code: ExitCode = ExitCode.FAILURE

    def oneline(self) -> str:
        """``<run>: <error> (crash file <path>)`` on one line."""
        return f"{self.node}: {self.message} (crash file {self.crash_file})"


def combined_code(failures: list[Failure]) -> ExitCode:
    """One exit code for several failures: a full disk (74) or an unwritable folder (73) explains
    everything else; then a bug (1); ``DATA`` (65) or ``USAGE`` (64) only when all are user errors.
    """
    codes = {f.code for f in failures}
    for code in (ExitCode.IO, ExitCode.CANT_CREATE, ExitCode.FAILURE):
        if code in codes:
            return code
    return max(codes)


# The error classes of bids_eeg2fmri.errors by the name a traceback prints, with their exit code.
_USER_ERRORS = {"DataError": ExitCode.DATA, "UsageError": ExitCode.USAGE,
                "UserError": ExitCode.DATA, "CantCreateError": ExitCode.CANT_CREATE,
                "StorageError": ExitCode.IO}
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
        user = (last is not None and last.group(0).startswith("bids_eeg2fmri.errors.")
                and last.group(1) in _USER_ERRORS)
        code = _USER_ERRORS[last.group(1)] if user else ExitCode.FAILURE
        if user:
            message = last.group(2)
        cause = classify_crash(text)
        if cause is not None:
            code, message = cause
        failures.append(Failure(_run_of(node.group(1)) if node else path.name, message, path,
                                user or cause is not None, code))
    return failures


def _run_of(node: str) -> str:
    """``top_wf.sub_01_task_rest_run_1_fmri.prepare`` → ``sub_01_task_rest_run_1_fmri.prepare``."""
    parts = node.split(".")
    return ".".join(parts[1:]) if len(parts) > 2 else node
