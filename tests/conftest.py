"""Shared pytest fixtures. Area-specific fixtures live in the test modules that use them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep derived resources (atlas labels) in one cache per test session, never in $HOME."""
    monkeypatch.setenv("BIDS_EEG2FMRI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of small real recordings shared beside the repository."""
    if not REALDATA.is_dir():
        pytest.skip(f"real recordings not found at {REALDATA}")
    return REALDATA


def tree_hash(root: str | os.PathLike, exclude: tuple[str, ...] = ()) -> str:
    """Hash of every path and file's bytes below ``root``, skipping top-level names in ``exclude``."""
    h = hashlib.sha256()
    root = Path(root)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in exclude:
            continue
        h.update(rel.encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def real_layout(tmp_path_factory):
    """Factory ``real_layout(ds, size="small", unfetched=())``: a public dataset's real layout
    (ds003768, ds002338, ds002158; tests/reallayouts), built once per session. Read only."""
    from reallayouts import build_cached

    def build(ds: str, size: str = "small", unfetched: tuple[str, ...] = ()):
        return build_cached(tmp_path_factory, ds, size, unfetched)

    return build
