"""fMRIPrep-shaped derivative folders (names, sidecars and confounds as fMRIPrep 23–24 writes them)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

# fMRIPrep's MNI152NLin2009cAsym res-2 grid has this origin; the fixtures crop its extent.
RES2_ORIGIN = (-96.0, -132.0, -78.0)
CONFOUND_COLUMNS = ("global_signal", "csf", "white_matter", "trans_x", "trans_y", "trans_z",
                    "rot_x", "rot_y", "rot_z", "framewise_displacement", "dvars", "std_dvars",
                    "a_comp_cor_00", "cosine00")


def grid(shape=(40, 48, 40), zoom=4.0, origin=(-78.0, -112.0, -70.0)) -> np.ndarray:
    """An MNI-space affine: ``zoom`` mm voxels from ``origin``."""
    aff = np.diag([zoom, zoom, zoom, 1.0])
    aff[:3, 3] = origin
    return aff


def write_description(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.4.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.1",
                         "CodeURL": "https://github.com/nipreps/fmriprep/archive/24.1.1.tar.gz"}]},
        indent=2))


def write_run(folder: Path, prefix: str, data: np.ndarray, affine: np.ndarray, *, tr: float,
              task: str, space: str = "MNI152NLin2009cAsym", res: str | None = "2",
              non_steady: int = 0, mask: np.ndarray | None = None, motion_seed: int = 0,
              with_mask: bool = True) -> Path:
    """One run's fMRIPrep outputs; ``prefix`` is ``sub-01[_ses-1]_task-x[_run-1]``.

    Returns the ``desc-preproc_bold`` path.
    """
    sub = prefix.split("_")[0]
    ses = next((p for p in prefix.split("_") if p.startswith("ses-")), None)
    func = folder / sub / (ses or "") / "func"
    func.mkdir(parents=True, exist_ok=True)
    sp = f"space-{space}" + (f"_res-{res}" if res else "")
    img = nib.Nifti1Image(data.astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    bold = func / f"{prefix}_{sp}_desc-preproc_bold.nii.gz"
    nib.save(img, bold)
    (func / f"{prefix}_{sp}_desc-preproc_bold.json").write_text(json.dumps({
        "RepetitionTime": tr, "SkullStripped": False, "SliceTimingCorrected": True,
        "StartTime": tr / 2, "TaskName": task,
        "Sources": [f"bids:raw:{sub}/func/{prefix}_bold.nii.gz"]}, indent=2))
    if mask is None:
        mask = np.abs(data).mean(axis=3) > 0
    if with_mask:
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine),
                 func / f"{prefix}_{sp}_desc-brain_mask.nii.gz")
        (func / f"{prefix}_{sp}_desc-brain_mask.json").write_text(json.dumps(
            {"Type": "Brain", "RawSources": [f"{prefix}_bold.nii.gz"]}))
    nib.save(nib.Nifti1Image(data.mean(axis=3).astype(np.float32), affine),
             func / f"{prefix}_{sp}_boldref.nii.gz")
    n = data.shape[3]
    rng = np.random.default_rng(motion_seed)
    table = pd.DataFrame({c: rng.normal(scale=0.05, size=n) for c in CONFOUND_COLUMNS})
    table["framewise_displacement"] = np.abs(table["framewise_displacement"])
    for col in ("framewise_displacement", "dvars", "std_dvars"):
        table.loc[0, col] = np.nan
    for k in range(non_steady):
        flag = np.zeros(n)
        flag[k] = 1
        table[f"non_steady_state_outlier{k:02d}"] = flag
    table.to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t", index=False,
                 na_rep="n/a")
    (func / f"{prefix}_desc-confounds_timeseries.json").write_text(json.dumps(
        {"framewise_displacement": {"Description": "Framewise displacement", "Units": "mm"}}))
    return bold
