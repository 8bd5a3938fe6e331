"""Thin nipype interface around :func:`bids_eeg2fmri.fmri.fmriprep.import_fmriprep`."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec,
                                    traits)


class _ImportInput(BaseInterfaceInputSpec):
    files = traits.Dict(traits.Str, traits.Any, mandatory=True,
                        desc="fMRIPrep files of the run (FMRIPrepRun.as_dict())")
    output_res = traits.Int(2, usedefault=True)
    model_res = traits.Either(None, traits.Int, default=None, usedefault=True)
    dummy_scans = traits.Either(None, traits.Int, default=None, usedefault=True)
    fwhm = traits.Float(0.0, usedefault=True)
    high_pass = traits.Float(0.0, usedefault=True)


class _ImportOutput(TraitedSpec):
    preproc = File(exists=True)
    mask = File(exists=True)
    confounds = File(exists=True)
    boldref = traits.Either(None, File(exists=True))
    model = traits.Either(None, File(exists=True))
    metadata = traits.Dict(desc="sidecar of the preprocessed BOLD")
    model_metadata = traits.Dict(desc="sidecar of the model-ready BOLD")
    mask_metadata = traits.Dict()


class ImportFMRIPrep(SimpleInterface):
    """Resample one run's fMRIPrep outputs onto this app's MNI grid."""

    input_spec = _ImportInput
    output_spec = _ImportOutput

    def _run_interface(self, runtime):
        from ..fmri.fmriprep import import_fmriprep

        i = self.inputs
        res = import_fmriprep(dict(i.files), Path(runtime.cwd), output_res=i.output_res,
                              model_res=i.model_res, dummy_scans=i.dummy_scans, fwhm=i.fwhm,
                              high_pass=i.high_pass)
        meta = res["metadata"]
        self._results.update(
            preproc=str(res["preproc"]), mask=str(res["mask"]), confounds=str(res["confounds"]),
            boldref=None if res["boldref"] is None else str(res["boldref"]),
            model=None if res["model"] is None else str(res["model"]), metadata=meta,
            model_metadata={**meta, "Resolution": f"{i.model_res} mm isotropic",
                            "Normalization": "brain-masked, Legendre polynomial trend (order 2) "
                                             "removed, z-scored per voxel over the run"},
            mask_metadata={"Type": "Brain", "Sources": meta["FMRIPrep"]["Sources"][1:2],
                           "Description": "fMRIPrep's brain mask on the MNI152NLin2009aSym grid"})
        return runtime
