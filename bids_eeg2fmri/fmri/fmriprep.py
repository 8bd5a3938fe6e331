"""fMRIPrep outputs as the fMRI input (``--fmri-derivatives``): onto our grid, in our names.

fMRIPrep's ``desc-preproc_bold`` is already motion-corrected and normalised, usually to
``MNI152NLin2009cAsym``; this app's outputs are in ``MNI152NLin2009aSym``. Both are nonlinear
averages of the same MNI152 subjects in the same coordinate frame; they differ by at most a few
millimetres at the cortex, less than the 4 mm model grid. The series is therefore resampled by
world coordinates (nilearn, 3rd-order spline; nearest neighbour for the mask) onto our
``--output-res`` grid, without a template-to-template warp, and the source space is recorded in the
sidecar (``SourceSpace``). Every volume is kept, as fMRIPrep keeps it: the non-steady-state volumes
that fMRIPrep flagged (``non_steady_state_outlierNN`` columns) stay flagged in the confounds table
and are left out downstream from those flags, as this app does with its own; ``--dummy-scans``
replaces fMRIPrep's flags by its own count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ..bids.derivatives import source_uri
from ..errors import DataError
from ..resources.templates import TEMPLATE_SPACE, template_grid
from . import masking
from .confounds import non_steady_fields, non_steady_mask, non_steady_table
from .io import series_header, write_masked_series
from .model_ready import model_ready

CHUNK_VOLUMES = 16


def leading_non_steady(confounds: pd.DataFrame) -> int:
    """Leading volumes flagged by fMRIPrep's ``non_steady_state_outlierNN`` columns."""
    flagged = non_steady_mask(confounds)
    return int(np.argmin(flagged)) if not flagged.all() else int(flagged.size)


def _json(path: Path) -> dict[str, Any]:
    side = path.with_name(path.name.split(".")[0] + ".json")
    try:
        return json.loads(side.read_text()) if side.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read sidecar: {exc}", side) from None


def import_fmriprep(files: dict[str, str | None], out_dir: str | os.PathLike, *,
                    output_res: int = 2, model_res: int | None = None,
                    dummy_scans: int | None = None, fwhm: float = 0.0,
                    high_pass: float = 0.0) -> dict[str, Any]:
    """Bring one run's fMRIPrep outputs onto this app's grid.

    Parameters
    ----------
    files
        ``bold``, ``mask``, ``confounds``, ``boldref`` (may be ``None``), ``space``, ``res``
        (:meth:`~bids_eeg2fmri.bids.fmriprep.FMRIPrepRun.as_dict`).
    out_dir
        Work folder for the results.
    output_res, model_res
        Our output grid, and the model-ready grid (``None``: no model-ready series).
    dummy_scans
        Leading non-steady-state volumes to flag instead of fMRIPrep's flags; ``None`` keeps
        fMRIPrep's.
    fwhm, high_pass
        Optional smoothing (mm) and high-pass (Hz), as for our own preprocessing.

    Returns
    -------
    dict
        Paths ``preproc``, ``mask``, ``confounds``, ``boldref`` (or ``None``), ``model`` (or
        ``None``) and ``metadata`` (the preprocessed BOLD's sidecar fields).

    Raises
    ------
    DataError
        Naming the file: not 4-D, mask on another grid, confounds of another length, no TR.
    """
    from nilearn.image import resample_img

    out = Path(out_dir)
    bold_path, mask_path, conf_path = Path(files["bold"]), Path(files["mask"]), Path(files["confounds"])
    img = nib.load(os.fspath(bold_path))
    if img.ndim != 4:
        raise DataError(f"fMRIPrep BOLD must be 4-D, shape is {img.shape}", bold_path)
    src_mask = nib.load(os.fspath(mask_path))
    if src_mask.shape[:3] != img.shape[:3] or not np.allclose(src_mask.affine, img.affine, atol=1e-3):
        raise DataError("brain mask is not on the BOLD's grid", mask_path)
    meta_in = _json(bold_path)
    tr = float(meta_in.get("RepetitionTime") or img.header.get_zooms()[3] or 0)
    if tr <= 0:
        raise DataError("no positive RepetitionTime in the fMRIPrep sidecar or header", bold_path)
    conf = pd.read_csv(conf_path, sep="\t", na_values=["n/a"])
    n = img.shape[3]
    if len(conf) != n:
        raise DataError(f"confounds have {len(conf)} rows, the BOLD {n} volumes", conf_path)
    auto = dummy_scans is None
    if not auto:
        conf = pd.concat([conf.drop(columns=[c for c in conf.columns if c.startswith(
            "non_steady_state_outlier")]), non_steady_table(n, int(dummy_scans))], axis=1)
    flagged = non_steady_mask(conf)
    if flagged.all():
        raise DataError(f"all {n} volumes are non-steady-state", conf_path)
    # Filters and the model-ready fit leave out the leading flagged run (all fMRIPrep flags).
    skip = leading_non_steady(conf)

    shape, affine = template_grid(output_res)
    mask_img = resample_img(src_mask, target_affine=affine, target_shape=shape,
                            interpolation="nearest", force_resample=True, copy_header=True)
    mask = np.asarray(mask_img.dataobj) > 0
    if not mask.any():
        raise DataError("brain mask does not overlap the MNI grid", mask_path)
    values = np.empty((int(mask.sum()), n), dtype=np.float32)
    for start in range(0, n, CHUNK_VOLUMES):
        # A few volumes at a time: a 300-volume series at 2 mm is 1.3 GB in float32.
        stop = min(start + CHUNK_VOLUMES, n)
        part = resample_img(img.slicer[..., start:stop], target_affine=affine, target_shape=shape,
                            interpolation="continuous", force_resample=True, copy_header=True)
        values[:, start:stop] = np.asarray(part.dataobj, np.float32)[mask]
    values = masking.high_pass(masking.smooth_masked(values, mask, affine, fwhm), tr, high_pass,
                               skip=skip)
    result: dict[str, Any] = {"preproc": out / "preproc_bold.nii.gz",
                              "mask": out / "brain_mask.nii.gz",
                              "confounds": out / "confounds.tsv", "boldref": None, "model": None}
    write_masked_series(result["preproc"], values, mask, affine, tr)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine,
                             series_header(mask.shape, affine, None, dtype=np.uint8)),
             result["mask"])
    conf.to_csv(result["confounds"], sep="\t", index=False, na_rep="n/a")
    if files.get("boldref"):
        ref = resample_img(nib.load(files["boldref"]), target_affine=affine, target_shape=shape,
                           interpolation="continuous", force_resample=True, copy_header=True)
        result["boldref"] = out / "boldref.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(ref.dataobj, dtype=np.float32), affine,
                                 series_header(shape, affine, None)), result["boldref"])
    if model_res:
        from ..group.series import _downsample  # the group level's own masked box average

        mshape, maffine = template_grid(model_res)
        data = np.asarray(img.dataobj, dtype=np.float32)
        coarse, cmask = _downsample(data, np.asarray(src_mask.dataobj) > 0, img.affine, mshape,
                                    maffine)
        del data
        result["model"] = out / "model_bold.nii.gz"
        write_masked_series(result["model"], model_ready(coarse, sample_mask=~flagged), cmask,
                            maffine, tr)
    space = str(files.get("space"))
    result["metadata"] = {
        "RepetitionTime": tr,
        "SkullStripped": bool(meta_in.get("SkullStripped", False)),
        **non_steady_fields(int(flagged.sum()), "fMRIPrep non_steady_state_outlier columns"
                            if auto else "user (--dummy-scans)"),
        "SpatialReference": TEMPLATE_SPACE,
        "SourceSpace": space + (f" (res-{files['res']})" if files.get("res") else ""),
        "Resolution": f"{output_res} mm isotropic",
        "Interpolation": "nilearn resample_img (3rd-order spline) by world coordinates from "
                         f"fMRIPrep's {space} grid, no template-to-template warp",
        "SmoothingFWHM": float(fwhm), "HighPassCutoffHz": float(high_pass),
        "FMRIPrep": {"Sources": [source_uri(p, "fmriprep")
                                 for p in (bold_path, mask_path, conf_path)],
                     "SliceTimingCorrected": meta_in.get("SliceTimingCorrected")},
    }
    if meta_in.get("TaskName"):
        result["metadata"]["TaskName"] = meta_in["TaskName"]
    return result
