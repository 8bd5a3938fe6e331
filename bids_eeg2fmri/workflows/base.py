"""The participant level as one nipype graph: an fMRI and an EEG workflow per selected run."""

from __future__ import annotations

import re
from typing import Any

from nipype.pipeline import engine as pe

from ..bids.layout import ParticipantPlan, RunPair
from ..eeg.sidecars import eeg_inputs_digest
from .eeg import init_eeg_preproc_wf
from .fmri import init_fmri_preproc_wf
from .fmriprep import init_fmriprep_import_wf


def run_workflow_name(pair: RunPair, modality: str) -> str:
    """A nipype-safe, unique workflow name for one run and modality (e.g. ``sub_01_run_1_fmri``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{pair.name}_{modality}")


def eeg_metadata(pair: RunPair) -> dict[str, Any]:
    """What the EEG stages need from the paired BOLD run and the EEG sidecar."""
    meta: dict[str, Any] = {}
    if pair.bold is not None:
        meta["RepetitionTime"] = pair.bold.repetition_time
        meta["NumberOfVolumes"] = pair.bold.n_volumes
        meta["NumberOfVolumesDiscardedByScanner"] = pair.bold.metadata.get(
            "NumberOfVolumesDiscardedByScanner", 0)
    if pair.eeg is not None and pair.eeg.metadata.get("PowerLineFrequency") is not None:
        meta["PowerLineFrequency"] = pair.eeg.metadata["PowerLineFrequency"]
    if pair.eeg is not None:
        meta["SidecarDigest"] = eeg_inputs_digest(pair.eeg.path)
    return meta


def init_participant_wf(*, config, plans: list[ParticipantPlan],
                        name: str = "bids_eeg2fmri_participant_wf",
                        fmriprep: dict | None = None) -> pe.Workflow:
    """Build the participant-level workflow for every selected run.

    Parameters
    ----------
    config
        The resolved :class:`~bids_eeg2fmri.config.Config`.
    plans
        Selected participants and their runs (from ``bids.layout.collect_participants``).
    name
        Name of the top-level workflow (its folder in the work dir).
    fmriprep
        Raw BOLD path → its :class:`~bids_eeg2fmri.bids.fmriprep.FMRIPrepRun` (``--fmri-derivatives``);
        those runs take fMRIPrep's outputs instead of this app's fMRI preprocessing.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        One sub-workflow per run and modality, named after the run, with its inputs set.
    """
    wf = pe.Workflow(name=name)
    for plan in plans:
        t1w = str(plan.t1w[0]) if plan.t1w else None
        for pair in plan.pairs:
            prepped = (fmriprep or {}).get(pair.bold.path) if pair.bold is not None else None
            if prepped is not None:  # --fmri-derivatives: fMRIPrep's outputs replace ours
                fmri = init_fmriprep_import_wf(config=config, files=prepped.as_dict(),
                                               name=run_workflow_name(pair, "fmri"))
                fmri.inputs.inputnode.bold_file = str(pair.bold.path)
                wf.add_nodes([fmri])
            elif pair.bold is not None:
                fmri = init_fmri_preproc_wf(config=config, metadata=pair.bold.metadata,
                                            name=run_workflow_name(pair, "fmri"))
                fmri.inputs.inputnode.bold_file = str(pair.bold.path)
                if t1w is not None:
                    fmri.inputs.inputnode.t1w_file = t1w
                wf.add_nodes([fmri])
            if pair.eeg is not None:
                eeg = init_eeg_preproc_wf(config=config, metadata=eeg_metadata(pair),
                                          name=run_workflow_name(pair, "eeg"))
                eeg.inputs.inputnode.eeg_file = str(pair.eeg.path)
                wf.add_nodes([eeg])
    return wf
