"""A run's BOLD on the model grid in each metric domain, derived from ``desc-preproc`` and
cached when the participant level did not write it (see :func:`model_grid_series`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..bids.derivatives import atomic_path, sidecar_path
from ..data.readers import non_steady_flags
from ..errors import DataError
from ..evaluation.domains import minmax_volumes, resize_grid
from ..fmri.io import write_masked_series
from ..fmri.model_ready import model_ready
from .runfiles import RunFiles, read_json

log = logging.getLogger("bids_eeg2fmri")


def discarded_volumes(bold: Path) -> int:
    """Leading volumes of the original run missing from a BOLD derivative (its sidecar)."""
    meta = read_json(sidecar_path(bold))
    return int(meta.get("NumberOfVolumesDiscardedByUser", 0) or 0)


def repetition_time(bold: Path, meta: dict | None = None) -> float:
    """The sidecar's ``RepetitionTime`` (the NIfTI header's when the sidecar lacks it); ``meta``
    is the sidecar's content when the caller has already read it."""
    meta = read_json(sidecar_path(bold)) if meta is None else meta
    tr = meta.get("RepetitionTime") or nib.load(os.fspath(bold)).header.get_zooms()[3]
    if not tr or float(tr) <= 0:
        raise DataError("no positive RepetitionTime in the sidecar or header", path=bold)
    return float(tr)


def model_grid_series(run: RunFiles, res: int, cache_dir: Path,
                      domain: str = "fluctuations", grid: str = "model") -> Path:
    """The run's model-ready BOLD on the ``res`` mm template grid.

    The participant level's ``desc-model_bold`` when it exists at that resolution; otherwise
    derived from ``desc-preproc`` (averaged over the mask inside each coarse voxel, then
    detrended and z-scored per voxel with :func:`~bids_eeg2fmri.fmri.model_ready.model_ready`,
    fitted on the volumes not flagged non-steady) and cached in ``cache_dir`` next to a copy of its
    sidecar. In the ``intensity`` domain the averaged intensities are min-max normalised per
    volume instead (:func:`~bids_eeg2fmri.evaluation.domains.minmax_volumes`), always from
    ``desc-preproc``, on the model grid or (``grid="resize"``) the 64×64×30 resize of the
    template's field of view.
    """
    if res in run.model_bold and domain == "fluctuations" and grid == "model":
        return run.model_bold[res]
    if run.preproc_bold is None:
        raise DataError(f"{run.key}: no BOLD series", path=run.spectrogram)
    if run.mask is None:
        raise DataError(f"{run.key}: desc-preproc_bold has no desc-brain_mask beside it",
                        path=run.preproc_bold)
    conf_stamp = run.confounds.stat().st_mtime_ns if run.confounds is not None else ""
    digest = hashlib.sha1(f"{run.preproc_bold.resolve()}|{run.preproc_bold.stat().st_mtime_ns}|"
                          f"{res}|{grid}|{conf_stamp}".encode()).hexdigest()[:12]
    desc = "model" if domain == "fluctuations" else "intensity"
    dest = cache_dir / f"{run.key}_res-{res}_desc-{desc}_bold_{digest}.nii.gz"
    if dest.exists():
        return dest
    from ..resources.templates import template_grid

    log.info("%s: deriving the %s %s series from desc-preproc", run.key,
             f"{res} mm" if grid == "model" else "resized", desc)
    img = nib.load(os.fspath(run.preproc_bold))
    mask_img = nib.load(os.fspath(run.mask))
    if img.ndim != 4 or mask_img.shape != img.shape[:3]:
        raise DataError(f"BOLD {img.shape} and mask {mask_img.shape} do not share a grid",
                        path=run.preproc_bold)
    shape, affine = template_grid(res) if grid == "model" else resize_grid()
    values, mask = _downsample(np.asarray(img.dataobj, dtype=np.float32),
                               np.asarray(mask_img.dataobj) > 0, img.affine, shape, affine)
    meta = read_json(sidecar_path(run.preproc_bold))
    tr = repetition_time(run.preproc_bold, meta)
    cache_dir.mkdir(parents=True, exist_ok=True)
    steady = ~non_steady_flags(values.shape[1], run.confounds, sidecar_path(run.preproc_bold))
    write_masked_series(dest, model_ready(values, sample_mask=steady) if domain == "fluctuations"
                        else minmax_volumes(values, axis=0), mask, affine, tr)  # atomic itself
    with atomic_path(sidecar_path(dest)) as tmp:
        tmp.write_text(json.dumps(meta))
    return dest


def _downsample(data: np.ndarray, mask: np.ndarray, src_affine: np.ndarray,
                shape: tuple[int, int, int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked box average of a fine series at the voxel centres of a coarser grid.

    Returns ``(voxels, t)`` values inside the coarse mask (coarse voxels whose centre falls on
    brain) and that mask.
    """
    from scipy.ndimage import map_coordinates, uniform_filter

    ratio = np.abs(np.diag(affine)[:3]) / np.abs(np.diag(src_affine)[:3])
    size = [max(1, int(round(r))) for r in ratio]
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    to_src = np.linalg.inv(src_affine) @ affine
    coords = to_src[:3, :3] @ ijk + to_src[:3, 3:4]
    m = mask.astype(np.float32)
    weight = uniform_filter(m, size=size, mode="constant")
    w_at = map_coordinates(weight, coords, order=0, mode="constant", cval=0.0)
    centre = map_coordinates(m, coords, order=0, mode="constant", cval=0.0) > 0
    coarse = (centre & (w_at > 0)).reshape(shape)
    sel = coords[:, coarse.ravel()]
    w_sel = w_at[coarse.ravel()]
    out = np.empty((int(coarse.sum()), data.shape[3]), dtype=np.float32)
    for t in range(data.shape[3]):
        # Averaging only brain voxels: zeros outside the mask would darken edge voxels.
        num = uniform_filter(data[..., t] * m, size=size, mode="constant")
        out[:, t] = map_coordinates(num, sel, order=0, mode="constant") / w_sel
    return out, coarse


def series_mask(bold: Path) -> np.ndarray:
    """Voxels of a model-ready series that vary over time (the series is zero outside its mask)."""
    data = np.asarray(nib.load(os.fspath(bold)).dataobj, dtype=np.float32)
    return data.std(axis=3) > 0

