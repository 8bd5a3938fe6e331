"""fMRI half of the participant level: wiring only (the numerics live in ``bids_eeg2fmri.fmri``).

::

    inputnode(bold_file, t1w_file)
      ├ prepare (validate, count non-steady volumes, slice timing; every volume kept)
      └ hmc (on the original series: steady-state boldref, every volume registered) ┐
              └ register (boldref → MNI, optional via T1w)                    │
                  └ resample (one shot: hmc ∘ affine ∘ warp; mask; model-ready)      │
                      └ confounds (motion, FD, DVARS, tissue, non-steady flags) ◄───┘
      derivatives: boldref, hmc and MNI transforms, preproc BOLD, brain mask, confounds, model BOLD
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from ..errors import UsageError
from ..interfaces.derivatives import SaveDerivative
from ..interfaces.fmri import (BoldSidecar, Confounds, HeadMotion, PrepareBold, RegisterToMNI,
                               ResampleToMNI)
from ..resources.templates import TEMPLATE_SPACE


def init_fmri_preproc_wf(*, config, metadata: Mapping[str, Any] | None = None,
                         name: str = "fmri_preproc_wf") -> pe.Workflow:
    """Build the fMRI preprocessing workflow of one BOLD run.

    Parameters
    ----------
    config
        The run's :class:`~bids_eeg2fmri.config.Config`; uses ``config.fmri`` and
        ``config.execution`` (``output_dir``, ``omp_nthreads``).
    metadata
        The run's BIDS metadata with inheritance resolved (``RepetitionTime``, ``SliceTiming``,
        ``SliceEncodingDirection``…). ``None`` reads the BOLD file's own sidecar at run time.
    name
        Workflow name.

    Inputs
    ------
    bold_file
        The raw BOLD series (also names the outputs).
    t1w_file
        Optional T1w image; used only with ``config.fmri.use_t1w``.

    Outputs
    -------
    preproc_bold, brain_mask, boldref, confounds, hmc_xfm, mni_xfm, model_bold
        Paths in the derivatives dataset (``model_bold`` only with ``config.fmri.model_ready``).

    Raises
    ------
    UsageError
        Without an output directory.
    """
    fm = config.fmri
    out_dir = config.execution.output_dir
    if out_dir is None:
        raise UsageError("the fMRI workflow needs an output directory")
    n_procs = config.execution.omp_nthreads or config.execution.nprocs or os.cpu_count() or 1
    options = {"output_res": fm.output_res, "fwhm": fm.fwhm, "high_pass": fm.high_pass,
               "model_res": fm.model_res, "slice_time_ref": fm.slice_time_ref}
    res = fm.output_res

    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["bold_file", "t1w_file"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=[
        "preproc_bold", "brain_mask", "boldref", "confounds", "hmc_xfm", "mni_xfm", "model_bold"]),
        name="outputnode")

    prepare = pe.Node(PrepareBold(metadata=None if metadata is None else dict(metadata),
                                  dummy_scans=fm.dummy_scans, slice_time_ref=fm.slice_time_ref),
                      name="prepare")
    # Batched torch head motion takes one thread unless --omp-nthreads asks for more: measured on
    # the shared 2-core machine, two threads spent 4.4× the CPU of one (OpenMP threads spinning
    # while the scheduler serves the other) and took 43 s against 6 s, and a 2-slot node waits
    # for the EEG node to free its slot (3 minutes idle in the participant-level profile).
    hmc_procs = int(n_procs) if fm.hmc == "ants" or config.execution.omp_nthreads else 1
    hmc = pe.Node(HeadMotion(n_procs=hmc_procs, method=fm.hmc), name="hmc", n_procs=hmc_procs)
    register = pe.Node(RegisterToMNI(method=fm.registration), name="register")
    resample = pe.Node(ResampleToMNI(output_res=res, fwhm=fm.fwhm, high_pass=fm.high_pass,
                                     model_res=fm.model_res if fm.model_ready else None,
                                     n_procs=int(n_procs)),
                       name="resample", n_procs=int(n_procs))
    confounds = pe.Node(Confounds(), name="confounds")

    def sidecar(kind: str) -> pe.Node:
        return pe.Node(BoldSidecar(kind=kind, options=options), name=f"meta_{kind}")

    meta = {k: sidecar(k) for k in ("preproc", "mask", "boldref", "xfm")}
    common = {"out_dir": str(out_dir), "datatype": "func"}
    space = {"space": TEMPLATE_SPACE, "res": str(res)}
    ds = {
        "preproc": pe.Node(SaveDerivative(suffix="bold", extension=".nii.gz",
                                          entities={**space, "desc": "preproc"}, **common),
                           name="ds_preproc_bold"),
        "mask": pe.Node(SaveDerivative(suffix="mask", extension=".nii.gz",
                                       entities={**space, "desc": "brain"}, **common),
                        name="ds_brain_mask"),
        "boldref": pe.Node(SaveDerivative(suffix="boldref", extension=".nii.gz",
                                          entities={"space": "boldref"}, **common),
                           name="ds_boldref"),
        "confounds": pe.Node(SaveDerivative(suffix="timeseries", extension=".tsv",
                                            entities={"desc": "confounds"}, **common),
                             name="ds_confounds"),
        "hmc": pe.Node(SaveDerivative(suffix="xfm", extension=".txt",
                                      entities={"from_": "orig", "to": "boldref", "mode": "image",
                                                "desc": "hmc"}, **common),
                       name="ds_hmc_xfm"),
        "xfm": pe.Node(SaveDerivative(suffix="xfm", extension=".nii.gz",
                                      entities={"from_": "boldref", "to": TEMPLATE_SPACE,
                                                "mode": "image"}, **common),
                       name="ds_mni_xfm"),
    }

    if fm.use_t1w:
        wf.connect(inputnode, "t1w_file", register, "t1w_file")
    wf.connect([
        (inputnode, prepare, [("bold_file", "bold_file")]),
        # Motion is estimated on the original series (see stages.head_motion); the non-steady
        # volumes stay in the series and are flagged, not removed.
        (inputnode, hmc, [("bold_file", "in_file")]),
        (prepare, hmc, [("dummy_scans", "skip")]),
        (prepare, resample, [("dummy_scans", "n_non_steady")]),
        (prepare, confounds, [("dummy_scans", "n_non_steady")]),
        (hmc, register, [("boldref", "boldref"), ("boldref_mask", "boldref_mask")]),
        (prepare, resample, [("out_file", "in_file")]),
        (hmc, resample, [("hmc_xfm", "hmc_xfm")]),
        (register, resample, [("field", "field")]),
        (hmc, confounds, [("motion_params", "motion_params")]),
        (resample, confounds, [("dvars", "dvars"), ("tissue", "tissue"),
                                ("tissue_meta", "tissue_meta")]),
        (resample, ds["preproc"], [("preproc", "in_file")]),
        (resample, ds["mask"], [("mask", "in_file")]),
        (hmc, ds["boldref"], [("boldref", "in_file")]),
        (hmc, ds["hmc"], [("hmc_xfm", "in_file")]),
        (register, ds["xfm"], [("field", "in_file")]),
        (confounds, ds["confounds"], [("tsv", "in_file"), ("metadata", "metadata")]),
        (meta["preproc"], ds["preproc"], [("metadata", "metadata")]),
        (meta["mask"], ds["mask"], [("metadata", "metadata")]),
        (meta["boldref"], ds["boldref"], [("metadata", "metadata")]),
        (meta["xfm"], ds["xfm"], [("metadata", "metadata")]),
        (ds["preproc"], outputnode, [("out_file", "preproc_bold")]),
        (ds["mask"], outputnode, [("out_file", "brain_mask")]),
        (ds["boldref"], outputnode, [("out_file", "boldref")]),
        (ds["confounds"], outputnode, [("out_file", "confounds")]),
        (ds["hmc"], outputnode, [("out_file", "hmc_xfm")]),
        (ds["xfm"], outputnode, [("out_file", "mni_xfm")]),
    ])
    for node in meta.values():
        wf.connect([(inputnode, node, [("bold_file", "source_file")]),
                    (prepare, node, [("info", "info")]),
                    (register, node, [("settings", "settings")])])
    for node in ds.values():
        wf.connect(inputnode, "bold_file", node, "source_file")

    if fm.model_ready:
        meta_model = sidecar("model")
        ds_model = pe.Node(SaveDerivative(
            suffix="bold", extension=".nii.gz",
            entities={"space": TEMPLATE_SPACE, "res": str(fm.model_res), "desc": "model"}, **common),
            name="ds_model_bold")
        wf.connect([
            (inputnode, meta_model, [("bold_file", "source_file")]),
            (prepare, meta_model, [("info", "info")]),
            (register, meta_model, [("settings", "settings")]),
            (meta_model, ds_model, [("metadata", "metadata")]),
            (resample, ds_model, [("model", "in_file")]),
            (inputnode, ds_model, [("bold_file", "source_file")]),
            (ds_model, outputnode, [("out_file", "model_bold")]),
        ])
    return wf
