"""Ways to break a valid dataset for the failure tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def plant_nan_voxel(bold: Path, volume: int = 5) -> None:
    """Rewrite ``bold`` as float32 with one NaN voxel in ``volume`` (a bad input file, exit 65)."""
    img = nib.load(bold)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[0, 0, 0, volume] = np.nan
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(data, img.affine, header), bold)


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: an app started with
    ``start_new_session=True`` and every worker it started, even after its own death."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids
