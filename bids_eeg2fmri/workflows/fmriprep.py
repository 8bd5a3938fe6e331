"""fMRI half of the participant level when fMRIPrep already ran: wiring only.

::

    import (fMRIPrep BOLD, mask, confounds, boldref → our grid) → derivatives under our names
"""

from __future__ import annotations

from typing import Any

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from ..errors import UsageError
from ..interfaces.derivatives import SaveDerivative
from ..interfaces.fmriprep import ImportFMRIPrep
from ..resources.templates import TEMPLATE_SPACE


def init_fmriprep_import_wf(*, config, files: dict[str, Any],
                            name: str = "fmriprep_import_wf") -> pe.Workflow:
    """Build the workflow that takes one run's fMRIPrep outputs instead of preprocessing it.

    Parameters
    ----------
    config
        The run's :class:`~bids_eeg2fmri.config.Config` (``config.fmri``, ``output_dir``).
    files
        :meth:`~bids_eeg2fmri.bids.fmriprep.FMRIPrepRun.as_dict` of the run.
    name
        Workflow name.

    Inputs
    ------
    bold_file
        The raw BOLD series (names the outputs).

    Outputs
    -------
    preproc_bold, brain_mask, confounds, model_bold
        Paths in the derivatives dataset (``model_bold`` only with ``config.fmri.model_ready``).
    """
    fm = config.fmri
    out_dir = config.execution.output_dir
    if out_dir is None:
        raise UsageError("the fMRI workflow needs an output directory")
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["bold_file"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(
        fields=["preproc_bold", "brain_mask", "confounds", "model_bold"]), name="outputnode")
    imp = pe.Node(ImportFMRIPrep(files=dict(files), output_res=fm.output_res,
                                 model_res=fm.model_res if fm.model_ready else None,
                                 dummy_scans=fm.dummy_scans, fwhm=fm.fwhm,
                                 high_pass=fm.high_pass), name="import_fmriprep")
    common = {"out_dir": str(out_dir), "datatype": "func"}
    space = {"space": TEMPLATE_SPACE, "res": str(fm.output_res)}
    saves = [("preproc", "metadata", "preproc_bold",
              dict(suffix="bold", entities={**space, "desc": "preproc"})),
             ("mask", "mask_metadata", "brain_mask",
              dict(suffix="mask", entities={**space, "desc": "brain"})),
             ("confounds", None, "confounds",
              dict(suffix="timeseries", entities={"desc": "confounds"}))]
    if files.get("boldref"):
        saves.append(("boldref", None, None, dict(suffix="boldref", entities=space)))
    if fm.model_ready:
        saves.append(("model", "model_metadata", "model_bold",
                      dict(suffix="bold", entities={"space": TEMPLATE_SPACE,
                                                    "res": str(fm.model_res), "desc": "model"})))
    for field, meta, out, kw in saves:
        ext = ".tsv" if field == "confounds" else ".nii.gz"
        ds = pe.Node(SaveDerivative(extension=ext, **kw, **common), name=f"ds_{field}")
        wf.connect([(inputnode, ds, [("bold_file", "source_file")]),
                    (imp, ds, [(field, "in_file")])])
        if meta is not None:
            wf.connect(imp, meta, ds, "metadata")
        if out is not None:
            wf.connect(ds, "out_file", outputnode, out)
    return wf
