"""Thin nipype interfaces over the fMRI stages (:mod:`bids_eeg2fmri.fmri.stages`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec,
                                    isdefined, traits)

from ..fmri import stages


def _opt(value: Any) -> Any:
    return value if isdefined(value) else None


# ----------------------------------------------------------------------------- prepare
class _PrepareInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="raw BOLD series")
    metadata = traits.Either(None, traits.Dict, default=None, usedefault=True,
                             desc="BIDS metadata of the run (None: read the file's sidecar)")
    dummy_scans = traits.Either(None, traits.Int, default=None, usedefault=True,
                                desc="leading non-steady-state volumes (None: detect)")
    slice_time_ref = traits.Range(0.0, 1.0, value=0.5, usedefault=True)


class _PrepareOutput(TraitedSpec):
    out_file = File(exists=True, desc="slice-time corrected series, every volume")
    dummy_scans = traits.Int(desc="leading non-steady-state volumes (kept, flagged)")
    info = traits.Dict(desc="dummy scans, TR, slice-timing facts")


class PrepareBold(SimpleInterface):
    """Validate the run, count non-steady volumes, correct slice timing (:func:`stages.prepare`)."""

    input_spec = _PrepareInput
    output_spec = _PrepareOutput

    def _run_interface(self, runtime):
        out = Path(runtime.cwd) / "bold_stc.nii"
        info = stages.prepare(self.inputs.bold_file, out, metadata=self.inputs.metadata,
                              dummy_scans=self.inputs.dummy_scans,
                              slice_time_ref=self.inputs.slice_time_ref)
        self._results["out_file"] = os.fspath(out)
        self._results["dummy_scans"] = int(info["dummy_scans"])
        self._results["info"] = info
        return runtime


# ----------------------------------------------------------------------------- head motion
class _HMCInput(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="the original BOLD series")
    skip = traits.Int(0, usedefault=True, desc="leading non-steady volumes, not in the boldref")
    n_procs = traits.Int(1, usedefault=True, desc="torch threads or ANTs processes")
    method = traits.Enum("torch", "ants", usedefault=True, desc="head-motion registration")


class _HMCOutput(TraitedSpec):
    boldref = File(exists=True)
    boldref_mask = File(exists=True)
    hmc_xfm = File(exists=True, desc="ITK text file, one affine per volume")
    motion_params = File(exists=True)


class HeadMotion(SimpleInterface):
    """Boldref and rigid head-motion estimation (:func:`stages.head_motion`)."""

    input_spec = _HMCInput
    output_spec = _HMCOutput

    def _run_interface(self, runtime):
        self._results.update(stages.head_motion(self.inputs.in_file, runtime.cwd,
                                                n_procs=self.inputs.n_procs,
                                                skip=self.inputs.skip,
                                                method=self.inputs.method))
        return runtime


# ----------------------------------------------------------------------------- registration
class _RegInput(BaseInterfaceInputSpec):
    boldref = File(exists=True, mandatory=True)
    boldref_mask = File(exists=True, mandatory=True)
    method = traits.Enum("syn", "syn-quick", "affine", usedefault=True)
    t1w_file = File(exists=True, desc="T1w image (boldref → T1w → MNI when given)")


class _RegOutput(TraitedSpec):
    field = File(exists=True, desc="displacement field, template grid")
    settings = traits.Dict()


class RegisterToMNI(SimpleInterface):
    """Boldref → MNI152NLin2009aSym with antspyx (:func:`stages.register`)."""

    input_spec = _RegInput
    output_spec = _RegOutput

    def _run_interface(self, runtime):
        self._results.update(stages.register(self.inputs.boldref, self.inputs.boldref_mask,
                                             runtime.cwd, method=self.inputs.method,
                                             t1w_file=_opt(self.inputs.t1w_file)))
        return runtime


# ----------------------------------------------------------------------------- resampling
class _ResampleInput(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True)
    hmc_xfm = File(exists=True, mandatory=True)
    field = File(exists=True, mandatory=True)
    output_res = traits.Enum(2, 1, 3, 4, usedefault=True)
    fwhm = traits.Float(0.0, usedefault=True)
    high_pass = traits.Float(0.0, usedefault=True)
    model_res = traits.Either(None, traits.Enum(1, 2, 3, 4), default=None, usedefault=True)
    n_procs = traits.Int(1, usedefault=True, desc="processes resampling volumes in parallel")
    n_non_steady = traits.Int(0, usedefault=True, desc="leading non-steady-state volumes")


class _ResampleOutput(TraitedSpec):
    preproc = File(exists=True)
    mask = File(exists=True)
    model = traits.Either(None, File(exists=True))
    dvars = File(exists=True)
    tissue = File(exists=True, desc="tissue confounds (global, WM, CSF, CompCor, cosines)")
    tissue_meta = File(exists=True, desc="their column metadata (.json)")


class ResampleToMNI(SimpleInterface):
    """One-shot resampling, masking, filters and model-ready series (:func:`stages.resample`)."""

    input_spec = _ResampleInput
    output_spec = _ResampleOutput

    def _run_interface(self, runtime):
        i = self.inputs
        out = stages.resample(i.in_file, i.hmc_xfm, i.field, runtime.cwd, output_res=i.output_res,
                              fwhm=i.fwhm, high_pass=i.high_pass, model_res=i.model_res,
                              n_procs=i.n_procs, n_non_steady=i.n_non_steady)
        self._results.update({k: out[k] for k in ("preproc", "mask", "model", "dvars",
                                                          "tissue", "tissue_meta")})
        return runtime


# ----------------------------------------------------------------------------- confounds
class _ConfInput(BaseInterfaceInputSpec):
    motion_params = File(exists=True, mandatory=True)
    dvars = File(exists=True, mandatory=True)
    tissue = File(exists=True, desc="ResampleToMNI's tissue confounds")
    tissue_meta = File(exists=True, desc="their column metadata (.json)")
    n_non_steady = traits.Int(0, usedefault=True,
                              desc="leading volumes flagged non_steady_state_outlierNN")


class _ConfOutput(TraitedSpec):
    tsv = File(exists=True)
    metadata = traits.Dict(desc="column descriptions (the .json sidecar)")


class Confounds(SimpleInterface):
    """Confounds table and column descriptions (:func:`stages.confounds`)."""

    input_spec = _ConfInput
    output_spec = _ConfOutput

    def _run_interface(self, runtime):
        import json

        out = stages.confounds(self.inputs.motion_params, self.inputs.dvars, runtime.cwd,
                               tissue_file=_opt(self.inputs.tissue),
                               tissue_meta=_opt(self.inputs.tissue_meta),
                               n_non_steady=self.inputs.n_non_steady)
        self._results["tsv"] = out["tsv"]
        self._results["metadata"] = json.loads(Path(out["json"]).read_text())
        return runtime


# ----------------------------------------------------------------------------- sidecars
class _SidecarInput(BaseInterfaceInputSpec):
    source_file = File(mandatory=True)
    info = traits.Dict(mandatory=True, desc="PrepareBold's info")
    settings = traits.Dict(desc="registration settings")
    kind = traits.Enum("preproc", "model", "mask", "boldref", "xfm", "confounds", usedefault=True)
    options = traits.Dict(desc="fmri configuration values")


class _SidecarOutput(TraitedSpec):
    metadata = traits.Dict()


class BoldSidecar(SimpleInterface):
    """The JSON sidecar of one fMRI derivative (:func:`stages.sidecar`)."""

    input_spec = _SidecarInput
    output_spec = _SidecarOutput

    def _run_interface(self, runtime):
        i = self.inputs
        self._results["metadata"] = stages.sidecar(
            i.kind, source_file=i.source_file, info=dict(i.info),
            settings=dict(i.settings) if isdefined(i.settings) else {},
            options=dict(i.options) if isdefined(i.options) else {})
        return runtime
