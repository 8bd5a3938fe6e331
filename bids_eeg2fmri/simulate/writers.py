"""Atomic, deterministic writers of the simulator's NIfTI, ``.npy`` and TSV files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..bids.derivatives import atomic_path, atomic_write_text


def save_nifti(img: nib.Nifti1Image, dest: Path) -> Path:
    """Save a NIfTI atomically; nibabel's gzip writer stores mtime 0 and no file name."""
    with atomic_path(dest) as tmp:
        nib.save(img, tmp)
    return dest


def save_npy(arr: np.ndarray, dest: Path) -> Path:
    """Save one array as ``.npy`` atomically."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    return dest


def write_tsv(dest: Path, columns: dict[str, Any]) -> Path:
    """Write a TSV from equal-length columns; floats with 10 significant digits, NaN as n/a."""
    names = list(columns)
    cols = [np.asarray(columns[n]) for n in names]
    rows = ["\t".join(names)]
    for i in range(len(cols[0]) if cols else 0):
        rows.append("\t".join(_cell(c[i]) for c in cols))
    return atomic_write_text(dest, "\n".join(rows) + "\n")


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else f"{float(value):.10g}"
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)
