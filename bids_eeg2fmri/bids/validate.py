"""Run the official BIDS validator (``bids-validator-deno``, offline) on a dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExitCode, UserError

VALIDATOR = "bids-validator-deno"


@dataclass
class ValidationResult:
    """Errors and warnings reported by the validator.

    Attributes
    ----------
    errors, warnings
        ``(code, location, message)`` triples.
    """

    errors: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the validator reported no error."""
        return not self.errors

    def summary(self, limit: int = 3) -> str:
        """The first ``limit`` errors on one line."""
        shown = "; ".join(f"{code} at {loc}" + (f" ({msg})" if msg else "")
                          for code, loc, msg in self.errors[:limit])
        more = len(self.errors) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


def find_validator() -> str:
    """Locate the validator executable: on PATH, or beside this Python (a venv not activated)."""
    found = shutil.which(VALIDATOR)
    if found:
        return found
    beside = Path(sys.executable).parent / VALIDATOR
    if beside.exists():
        return os.fspath(beside)
    raise UserError(f"{VALIDATOR} is not installed; install it (pip install bids-validator-deno) or "
                    "pass --skip-bids-validation", ExitCode.FAILURE)


def run_validator(bids_dir: str | os.PathLike, *, timeout: float = 1800) -> ValidationResult:
    """Validate ``bids_dir`` and return its errors and warnings.

    Parameters
    ----------
    bids_dir
        The dataset root.
    timeout
        Seconds before the validator is given up on.

    Returns
    -------
    ValidationResult

    Raises
    ------
    UserError
        When the validator cannot run or its output cannot be read (exit 1).
    """
    exe = find_validator()
    env = dict(os.environ)
    # deno caches under $DENO_DIR or $HOME; point it at a writable temp dir so a read-only
    # container root or HOME does not break validation.
    env.setdefault("DENO_DIR", os.path.join(tempfile.gettempdir(), "bids_eeg2fmri_deno"))
    env["NO_COLOR"] = "1"
    try:
        proc = subprocess.run([exe, "--format", "json", os.fspath(bids_dir)], capture_output=True,
                              text=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"the BIDS validator could not run: {exc}", ExitCode.FAILURE) from None
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"the BIDS validator failed (exit {proc.returncode}): {tail[0]}",
                        ExitCode.FAILURE) from None
    return parse_report(report)


def parse_report(report: dict) -> ValidationResult:
    """Split a validator JSON report into errors and warnings."""
    result = ValidationResult()
    for issue in report.get("issues", {}).get("issues", []):
        code = issue.get("code", "?")
        if issue.get("subCode"):
            code = f"{code}/{issue['subCode']}"
        message = " ".join(str(issue.get("issueMessage", "")).split())[:160]
        item = (code, str(issue.get("location", "")), message)
        (result.errors if issue.get("severity") == "error" else result.warnings).append(item)
    return result


def validate_input(bids_dir: str | os.PathLike) -> ValidationResult:
    """Validate a raw input dataset, raising exit 16 with the first errors when it fails."""
    result = run_validator(bids_dir)
    if not result.ok:
        raise UserError(f"BIDS validation failed with {len(result.errors)} error(s): {result.summary()}. "
                        "Fix the dataset or pass --skip-bids-validation", ExitCode.VALIDATION, bids_dir)
    return result
