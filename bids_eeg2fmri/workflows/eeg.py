"""EEG half of the participant level: wiring only (the numerics live in ``bids_eeg2fmri.eeg``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from ..errors import UsageError
from ..interfaces.derivatives import SaveDerivative
from ..interfaces.eeg import CleanEEG, EEGSidecar, EEGSpectral, node_options
from ..interfaces.eegexport import SavePreprocEEG


def init_eeg_preproc_wf(*, config, metadata: Mapping[str, Any],
                        name: str = "eeg_preproc_wf") -> pe.Workflow:
    """Build the EEG preprocessing workflow of one run.

    Parameters
    ----------
    config
        The run's :class:`~bids_eeg2fmri.config.Config`; uses ``config.eeg`` and
        ``config.execution.output_dir`` / ``bids_dir``.
    metadata
        What the EEG stages need from the paired BOLD run and the EEG sidecar:
        ``RepetitionTime`` and ``NumberOfVolumes`` of the BOLD run (absent/``None`` for an
        EEG-only run: the volume markers then define both), ``NumberOfVolumesDiscardedByScanner``
        (BOLD sidecar, default 0), ``PowerLineFrequency`` (EEG sidecar; absent disables the notch
        unless the recording's header has it), ``SidecarDigest`` (hash of the EEG sidecars and
        marker file: editing one re-runs the cleaning).
    name
        Workflow name.

    Inputs
    ------
    eeg_file
        The raw BIDS EEG recording (also names the outputs).

    Outputs
    -------
    preproc_eeg, spectrogram, bandpower
        Paths of ``desc-preproc_eeg.vhdr`` (``.fif`` with ``--eeg-output-format fif``), ``desc-stft_spectrogram.h5`` and
        ``desc-bandpower_timeseries.tsv`` in the derivatives dataset.
    clean_report
        JSON of what every cleaning stage did (for reports).

    Raises
    ------
    UsageError
        Without an output directory.
    """
    # Plain values (paths as strings) so nipype can hash the node inputs for caching; each node
    # gets only the options it reads, so changing an STFT option re-runs only the spectral node.
    options = config.to_dict()["eeg"]
    out_dir = config.execution.output_dir
    if out_dir is None:
        raise UsageError("the EEG workflow needs an output directory")
    tr = metadata.get("RepetitionTime")
    n_vol = metadata.get("NumberOfVolumes")
    line = metadata.get("PowerLineFrequency")
    derivs = config.eeg.eeg_derivatives

    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["eeg_file"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(
        fields=["preproc_eeg", "spectrogram", "bandpower", "clean_report"]), name="outputnode")

    clean = pe.Node(CleanEEG(
        options=node_options(options, CleanEEG), repetition_time=None if tr is None else float(tr),
        n_volumes=None if n_vol is None else int(n_vol),
        discarded_by_scanner=int(metadata.get("NumberOfVolumesDiscardedByScanner") or 0),
        line_freq=float(line) if isinstance(line, (int, float)) and line > 0 else None,
        sidecar_digest=str(metadata.get("SidecarDigest", "")),
        eeg_derivatives=None if derivs is None else str(derivs)),
        name="clean_eeg")
    spectral = pe.Node(EEGSpectral(options=node_options(options, EEGSpectral),
                                   n_volumes=None if n_vol is None else int(n_vol),
                                   protocol=config.group.protocol),
                       name="eeg_spectral")
    meta_fif = pe.Node(EEGSidecar(), name="meta_preproc")
    meta_h5 = pe.Node(EEGSidecar(keep=["Sources", "VolumeOnsetSource", "VolumeMarker",
                                       "EEGPlacement", "GradientCorrection", "BCGCorrection", "Filter",
                                       "Resampling", "BadChannels", "Reference"]),
                      name="meta_spectrogram")
    meta_tsv = pe.Node(EEGSidecar(keep=["Sources", "BadChannels"]), name="meta_bandpower")

    common = {"out_dir": str(out_dir), "datatype": "eeg"}
    ds_fif = pe.Node(SavePreprocEEG(out_dir=str(out_dir), output_format=config.eeg.eeg_output_format),
                     name="ds_preproc_eeg")
    ds_h5 = pe.Node(SaveDerivative(suffix="spectrogram", extension=".h5",
                                   entities={"desc": "stft"}, **common), name="ds_spectrogram")
    ds_tsv = pe.Node(SaveDerivative(suffix="timeseries", extension=".tsv",
                                    entities={"desc": "bandpower"}, **common), name="ds_bandpower")

    wf.connect([
        (inputnode, clean, [("eeg_file", "eeg_file")]),
        (clean, spectral, [("out_fif", "in_fif"), ("repetition_time", "repetition_time"),
                           ("first_volume", "first_volume")]),
        (clean, meta_fif, [("out_report", "report")]),
        (clean, meta_h5, [("out_report", "report")]),
        (clean, meta_tsv, [("out_report", "report")]),
        (inputnode, meta_fif, [("eeg_file", "source_file")]),
        (inputnode, meta_h5, [("eeg_file", "source_file")]),
        (inputnode, meta_tsv, [("eeg_file", "source_file")]),
        (spectral, meta_h5, [("h5_metadata", "extra")]),
        (spectral, meta_tsv, [("tsv_metadata", "extra")]),
        (clean, ds_fif, [("out_fif", "in_fif"), ("out_report", "report"),
                         ("first_volume", "first_volume")]),
        (meta_fif, ds_fif, [("metadata", "metadata")]),
        (spectral, ds_h5, [("out_h5", "in_file")]),
        (meta_h5, ds_h5, [("metadata", "metadata")]),
        (spectral, ds_tsv, [("out_tsv", "in_file")]),
        (meta_tsv, ds_tsv, [("metadata", "metadata")]),
        (inputnode, ds_fif, [("eeg_file", "source_file")]),
        (inputnode, ds_h5, [("eeg_file", "source_file")]),
        (inputnode, ds_tsv, [("eeg_file", "source_file")]),
        (ds_fif, outputnode, [("out_file", "preproc_eeg")]),
        (ds_h5, outputnode, [("out_file", "spectrogram")]),
        (ds_tsv, outputnode, [("out_file", "bandpower")]),
        (clean, outputnode, [("out_report", "clean_report")]),
    ])
    return wf
