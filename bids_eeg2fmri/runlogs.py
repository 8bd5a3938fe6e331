"""Per-invocation configuration logs: ``<output_dir>/logs/config-<UTC time>-<pid>.toml``.

SLURM array tasks and parallel participant runs share one output folder; each invocation writes
its own file (the time and process id make the name unique on a host), so none replaces another's.
The group level reads the newest participant-level file (:func:`latest_config`).
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path
from typing import Any

from .bids.derivatives import atomic_write_text

PATTERN = "config-*.toml"


def config_log_path(output_dir: str | os.PathLike, when: float | None = None,
                    pid: int | None = None) -> Path:
    """``logs/config-YYYYmmddTHHMMSSZ-<pid>.toml`` for this invocation."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if when is None else when))
    return Path(output_dir) / "logs" / f"config-{stamp}-{os.getpid() if pid is None else pid}.toml"


def save_config_text(output_dir: str | os.PathLike, text: str) -> Path:
    """Write this invocation's resolved configuration (TOML) and return its path."""
    return atomic_write_text(config_log_path(output_dir), text)


def latest_config(output_dir: str | os.PathLike, level: str) -> dict[str, Any]:
    """The newest saved configuration of ``level`` (``participant``/``group``), or ``{}``."""
    logs = Path(output_dir) / "logs"
    # Names sort by time; the legacy single file of older versions comes last (oldest).
    candidates = sorted(logs.glob(PATTERN), reverse=True) + [logs / "config.toml"]
    for path in candidates:
        try:
            with open(path, "rb") as fh:
                saved = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if saved.get("execution", {}).get("analysis_level") == level:
            return saved
    return {}
