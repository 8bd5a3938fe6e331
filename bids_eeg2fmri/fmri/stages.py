"""The fMRI stages as file-in/file-out functions: what each workflow node (and the benchmark) runs.

Each function reads its inputs, calls the numerical functions of the sibling modules and writes its
outputs into a folder it is given (a nipype node's working folder), returning what it wrote.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..bids.derivatives import source_uri
from ..errors import DataError
from ..resources.templates import template_grid
from . import confounds as conf
from . import masking, model_ready, motion, registration, slice_timing, tissue
from . import resample as resampling
from .antsutil import affine_to_ants_geometry, itk_text, parse_itk_text
from .dummy import detect_dummy_scans, match_brightness
from .io import (check_volume_count, load_bold, read_run, series_header, write_masked_series,
                 write_masked_series_async)

LOG = logging.getLogger(__name__)


def prepare(bold_file: str | os.PathLike, out_file: str | os.PathLike, *,
            metadata: dict[str, Any] | None = None, dummy_scans: int | None = None,
            slice_time_ref: float = 0.5) -> dict[str, Any]:
    """Validate the run, count its non-steady-state volumes and correct slice timing.

    Every volume is kept. Like fMRIPrep (AFNI ``3dTshift -ignore``), slice-timing correction
    interpolates the steady-state volumes only and passes the non-steady ones through unchanged:
    their saturation overshoot would otherwise leak into the first steady volumes' interpolation.

    Parameters
    ----------
    bold_file
        The raw BOLD series.
    out_file
        Where to write the slice-time corrected float32 series, every volume (``.nii``).
    metadata
        The run's BIDS metadata; the file's own sidecar when ``None``.
    dummy_scans
        Leading non-steady-state volumes to flag; detected automatically when ``None``.
    slice_time_ref
        Reference time as a fraction of the TR.

    Returns
    -------
    dict
        ``dummy_scans``, ``dummy_source`` (``user``/``auto``), ``repetition_time``,
        ``slice_timing_corrected``, ``start_time``, ``n_volumes`` (all), ``metadata``.

    Raises
    ------
    DataError
        Bad header or metadata (see :func:`read_run`), NaN/Inf voxels, fewer than 5 steady-state
        volumes.
    """
    run = read_run(bold_file, metadata)
    img, data = load_bold(bold_file)
    if dummy_scans is None:
        n_dummy, source = detect_dummy_scans(data), "auto"
    else:
        n_dummy, source = int(dummy_scans), "user"
    check_volume_count(data.shape[-1], n_dummy, bold_file)
    tr = run.repetition_time
    corrected = False
    start_time = 0.0
    if run.slice_timing is None:
        LOG.warning("%s: no SliceTiming in the metadata; slice-timing correction skipped",
                    bold_file)
    elif len(set(np.round(run.slice_timing, 7))) == 1:
        LOG.info("%s: all slices acquired at once; no slice-timing correction needed", bold_file)
        start_time = float(run.slice_timing[0])
    else:
        data[..., n_dummy:] = slice_timing.slice_time_correct(
            data[..., n_dummy:], run.slice_timing, tr,
            slice_encoding_direction=run.slice_encoding_direction, ref_fraction=slice_time_ref)
        corrected = True
        start_time = slice_time_ref * tr
    affine = img.affine
    try:
        affine_to_ants_geometry(affine)
    except ValueError as exc:
        raise DataError(str(exc), bold_file) from None
    hdr = series_header(data.shape, affine, tr, code=1)
    nib.save(nib.Nifti1Image(data.astype(np.float32, copy=False), affine, hdr), os.fspath(out_file))
    return {"dummy_scans": n_dummy, "dummy_source": source, "repetition_time": tr,
            "slice_timing_corrected": corrected, "start_time": start_time,
            "n_volumes": int(data.shape[-1]), "metadata": dict(run.metadata)}


def head_motion(in_file: str | os.PathLike, out_dir: str | os.PathLike, *, n_procs: int = 1,
                skip: int = 0, method: str = "torch") -> dict[str, str]:
    """Build the boldref, register every volume to it and save transforms and parameters.

    Motion is estimated on the original series (as fMRIPrep does), not on the slice-time corrected
    one: slice-timing interpolation mixes each slice with neighbouring volumes, so around a motion
    spike the slices of one corrected volume disagree about the head's pose. Measured on simulator
    data: rotation RMS error 0.0015 rad on the original series against 0.0027 rad after STC.

    The boldref is built from steady-state volumes only and every volume, the non-steady ones
    included, is registered to it (fMRIPrep keeps them in the series too), so the transforms and
    parameters have one row per volume of the run. The non-steady volumes are first scaled to the
    steady-state brightness: ANTs' mean-squares metric would read their saturation overshoot as
    misalignment (fMRIPrep's MCFLIRT uses a normalised correlation, which ignores it).

    Parameters
    ----------
    in_file
        The original BOLD series.
    out_dir
        Folder for the outputs (and ANTs' temporary files).
    n_procs
        torch threads (``method="torch"``) or ANTs worker processes (``method="ants"``).
    skip
        Leading non-steady-state volumes, left out of the boldref.
    method
        ``"torch"`` (batched, :mod:`.batched_rigid`) or ``"ants"`` (one registration per volume).

    Returns
    -------
    dict
        Paths: ``boldref`` (.nii.gz), ``boldref_mask`` (.nii.gz), ``hmc_xfm`` (ITK text, one affine
        per volume), ``motion_params`` (.tsv, six columns).
    """
    out_dir = Path(out_dir)
    img = nib.load(os.fspath(in_file))
    data = np.asarray(img.dataobj, dtype=np.float32)
    affine = img.affine
    skip = int(skip)
    boldref = motion.robust_reference(data[..., skip:], affine, method=method, n_procs=n_procs,
                                      scratch=out_dir)
    data = match_brightness(data, skip)
    mats = motion.register_volumes(boldref, data, affine, method=method, n_procs=n_procs,
                                   scratch=out_dir)
    params = motion.matrices_to_params(mats, motion.grid_center(data.shape, affine))
    mask = registration.epi_brain_mask(boldref, affine)
    out = {"boldref": out_dir / "boldref.nii.gz", "boldref_mask": out_dir / "boldref_mask.nii.gz",
           "hmc_xfm": out_dir / "hmc_xfm.txt", "motion_params": out_dir / "motion_params.tsv"}
    nib.save(nib.Nifti1Image(boldref, affine, series_header(boldref.shape, affine, None, code=1)),
             out["boldref"])
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), out["boldref_mask"])
    out["hmc_xfm"].write_text(itk_text(mats))
    np.savetxt(out["motion_params"], params, delimiter="\t", header="\t".join(motion.PARAM_NAMES),
               comments="")
    return {k: os.fspath(v) for k, v in out.items()}


def register(boldref_file: str | os.PathLike, mask_file: str | os.PathLike,
             out_dir: str | os.PathLike, *, method: str = "syn",
             t1w_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Register the boldref to MNI152NLin2009aSym; returns ``field`` path and ``settings``."""
    out_dir = Path(out_dir)
    ref = nib.load(os.fspath(boldref_file))
    mask = np.asarray(nib.load(os.fspath(mask_file)).dataobj) > 0
    t1w = None
    if t1w_file is not None:
        t1w = nib.load(os.fspath(t1w_file))
        if t1w.ndim != 3:
            raise DataError(f"T1w must be a 3-D image, shape is {t1w.shape}", t1w_file)
    field = out_dir / "boldref2mni_field.nii.gz"
    settings = registration.register_to_template(
        np.asarray(ref.dataobj, dtype=np.float32), ref.affine, field, method=method,
        brain_mask=mask, t1w=t1w, scratch=out_dir)
    return {"field": os.fspath(field), "settings": settings}


def resample(in_file: str | os.PathLike, hmc_file: str | os.PathLike,
             field_file: str | os.PathLike, out_dir: str | os.PathLike, *, output_res: int = 2,
             fwhm: float = 0.0, high_pass: float = 0.0, model_res: int | None = None,
             n_procs: int = 1, n_non_steady: int = 0) -> dict[str, Any]:
    """One-shot resampling to MNI, masking, optional filters and the model-ready series.

    ``n_procs`` worker processes resample contiguous chunks of volumes. Every volume is resampled;
    the ``n_non_steady`` leading ones are left out of what would be biased by their overshoot, as
    fMRIPrep does: CompCor and the cosine basis (:func:`tissue.tissue_confounds`), the
    ``--high-pass`` filter (fitted on the steady-state volumes, the others pass through) and the
    model-ready trend and scaling (:func:`model_ready.model_ready`). DVARS and the mean tissue
    signals cover every volume, as fMRIPrep's do.

    Returns
    -------
    dict
        Paths ``preproc`` (4-D .nii.gz), ``mask`` (.nii.gz), ``model`` (.nii.gz or ``None``),
        ``dvars`` (.tsv with dvars, std_dvars), ``tissue`` (.tsv of :func:`tissue.tissue_confounds`
        computed before smoothing and filtering), ``tissue_meta`` (its column metadata, .json) and the
        ``mask_voxels`` count.
    """
    out_dir = Path(out_dir)
    img = nib.load(os.fspath(in_file))
    # prepare's uncompressed output is memory-mapped by the resampling workers, chunk by chunk.
    data = (np.asarray(img.dataobj, dtype=np.float32) if os.fspath(in_file).endswith(".gz")
            else os.fspath(in_file))
    tr = float(img.header.get_zooms()[3])
    hmc = parse_itk_text(Path(hmc_file).read_text())
    field, field_affine = registration.load_field(field_file)
    shape, affine = template_grid(output_res)
    tmask = masking.template_mask_on_grid(shape, affine)
    values, covered = resampling.resample_series(data, img.affine, hmc, field, field_affine, tmask,
                                                 affine, return_coverage=True, n_procs=n_procs)
    skip = int(n_non_steady)
    # The mask is drawn from the steady-state signal, as fMRIPrep's comes from its boldref.
    keep = masking.refine_mask(tmask, values[:, skip:].mean(axis=1)) & covered
    mask = resampling.unmask(keep, tmask)
    values = values[keep]
    out: dict[str, Any] = {"preproc": out_dir / "preproc_bold.nii.gz",
                           "mask": out_dir / "brain_mask.nii.gz", "model": None,
                           "dvars": out_dir / "dvars.tsv", "mask_voxels": int(keep.sum()),
                           "tissue": out_dir / "tissue_confounds.tsv",
                           "tissue_meta": out_dir / "tissue_confounds.json"}
    # Compressed in a thread (zlib releases the GIL) while the confounds and the model-ready series
    # are computed: on two cores the gzip stream then no longer adds to the stage's time.
    writing = write_masked_series_async(out["preproc"], masking.high_pass(
        masking.smooth_masked(values, mask, affine, fwhm), tr, high_pass, skip=skip), mask, affine,
        tr)
    dv, std_dv = conf.dvars(values)
    tissue_table, tissue_meta = tissue.tissue_confounds(values, mask, affine, tr, skip)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine,
                             series_header(mask.shape, affine, None, dtype=np.uint8)), out["mask"])
    np.savetxt(out["dvars"], np.column_stack([dv, std_dv]), delimiter="\t",
               header="dvars\tstd_dvars", comments="")
    conf.write_confounds_tsv(tissue_table, out["tissue"])
    out["tissue_meta"].write_text(json.dumps(tissue_meta, indent=2))
    del values
    if model_res:
        mshape, maffine = template_grid(model_res)
        mmask = masking.template_mask_on_grid(mshape, maffine)
        mvals, mcov = resampling.resample_series(data, img.affine, hmc, field, field_affine, mmask,
                                                 maffine, return_coverage=True, n_procs=n_procs)
        mkeep = masking.refine_mask(mmask, mvals[:, skip:].mean(axis=1)) & mcov
        mvals = masking.high_pass(masking.smooth_masked(
            mvals[mkeep], resampling.unmask(mkeep, mmask), maffine, fwhm), tr, high_pass, skip=skip)
        out["model"] = out_dir / "model_bold.nii.gz"
        steady = np.arange(mvals.shape[1]) >= skip
        write_masked_series(out["model"], model_ready.model_ready(mvals, sample_mask=steady),
                            resampling.unmask(mkeep, mmask), maffine, tr)
    writing.result()
    return {k: (os.fspath(v) if isinstance(v, Path) else v) for k, v in out.items()}


def confounds(params_file: str | os.PathLike, dvars_file: str | os.PathLike,
              out_dir: str | os.PathLike, tissue_file: str | os.PathLike | None = None,
              tissue_meta: str | os.PathLike | None = None, n_non_steady: int = 0
              ) -> dict[str, str]:
    """Assemble the confounds table (.tsv) and its column descriptions (.json).

    ``tissue_file`` and ``tissue_meta`` are :func:`resample`'s tissue table and its metadata;
    ``n_non_steady`` leading volumes get fMRIPrep's ``non_steady_state_outlierNN`` columns.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    params = np.loadtxt(params_file, delimiter="\t", skiprows=1, ndmin=2)
    dv = np.loadtxt(dvars_file, delimiter="\t", skiprows=1, ndmin=2)
    table = conf.motion_table(params)
    table["dvars"] = dv[:, 0]
    table["std_dvars"] = dv[:, 1]
    extra: dict[str, Any] = {}
    if tissue_file is not None:
        table = pd.concat([table, pd.read_csv(tissue_file, sep="\t", na_values="n/a")], axis=1)
        extra = json.loads(Path(tissue_meta).read_text()) if tissue_meta else {}
    if n_non_steady:
        table = pd.concat([table, conf.non_steady_table(len(table), n_non_steady)], axis=1)
    tsv, js = out_dir / "confounds.tsv", out_dir / "confounds.json"
    conf.write_confounds_tsv(table, tsv)
    js.write_text(json.dumps(conf.confounds_sidecar(list(table.columns), extra), indent=2))
    return {"tsv": os.fspath(tsv), "json": os.fspath(js)}


def sidecar(kind: str, *, source_file: str | os.PathLike, info: dict[str, Any],
            settings: dict[str, Any] | None = None, options: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """The JSON sidecar of an fMRI derivative.

    Parameters
    ----------
    kind
        ``preproc``, ``model``, ``mask``, ``boldref`` or ``xfm``.
    source_file
        The raw BOLD file.
    info
        :func:`prepare`'s returned facts.
    settings
        :func:`register`'s settings.
    options
        The ``fmri`` configuration values (output_res, fwhm, high_pass, model_res, slice_time_ref).
    """
    settings = settings or {}
    options = options or {}
    src = [source_uri(source_file)]
    meta = info.get("metadata", {})
    dummies = conf.non_steady_fields(int(info["dummy_scans"]),
                                     "detected (global-signal outliers)"
                                     if info.get("dummy_source") == "auto"
                                     else "user (--dummy-scans)")
    if kind in ("preproc", "model"):
        out: dict[str, Any] = {
            "RepetitionTime": float(info["repetition_time"]),
            "SliceTimingCorrected": bool(info["slice_timing_corrected"]),
            "StartTime": float(info["start_time"]),
            "SkullStripped": True,
            "Sources": src,
            **dummies,
            "SpatialReference": f"{settings.get('Template', 'MNI152NLin2009aSym')}",
            "Resolution": f"{options.get('output_res' if kind == 'preproc' else 'model_res', 2)} mm isotropic",
            "Interpolation": "cubic B-spline, one resampling composing head motion, affine and warp",
            "Registration": settings,
            "SmoothingFWHM": float(options.get("fwhm", 0.0)),
            "HighPassCutoffHz": float(options.get("high_pass", 0.0)),
        }
        if info["slice_timing_corrected"]:
            out["SliceTimeReference"] = float(options.get("slice_time_ref", 0.5))
        if "TaskName" in meta:
            out["TaskName"] = meta["TaskName"]
        if kind == "model":
            out["Normalization"] = ("brain-masked, Legendre polynomial trend (order 2) removed, "
                                    "z-scored per voxel over the run")
        return out
    if kind == "mask":
        return {"Type": "Brain", "Sources": src,
                "Description": "MNI152NLin2009aSym brain mask restricted to voxels with EPI signal"}
    if kind == "boldref":
        return {"Sources": src, "SkullStripped": False, **dummies,
                "Description": "Median of the first steady-state volumes after rigid alignment "
                               "(non-steady-state volumes left out)"}
    if kind == "xfm":
        return {"Sources": src, "FromSpace": "boldref", "ToSpace": settings.get("Template"),
                **settings}
    raise ValueError(f"unknown sidecar kind {kind!r}")
