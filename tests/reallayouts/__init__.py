"""Fixture builders that rebuild public EEG-fMRI datasets' real layouts (see ``common``).

Tests use the session-scoped ``real_layout`` factory of ``conftest.py``: each layout is built once
per session and size, and must be treated as read only (copy it to modify it).
"""

from __future__ import annotations

from pathlib import Path

from . import ds002158, ds002338, ds003768

BUILDERS = {"ds003768": ds003768.build, "ds002338": ds002338.build, "ds002158": ds002158.build}
_BUILT: dict[tuple, Path] = {}


def build_cached(tmp_path_factory, ds: str, size: str = "small",
                 unfetched: tuple[str, ...] = ()) -> Path:
    """Build ``ds`` at ``size`` once per test session; return its root."""
    key = (ds, size, tuple(unfetched))
    if key not in _BUILT:
        folder = tmp_path_factory.mktemp(f"{ds}-{size}")
        _BUILT[key] = BUILDERS[ds](folder / ds, size=size, unfetched=tuple(unfetched))
    return _BUILT[key]
