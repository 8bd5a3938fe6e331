"""Thin nipype interfaces around the EEG stages in :mod:`bids_eeg2fmri.eeg`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec,
                                    traits)

from ..bids.derivatives import parse_entities, source_uri


def _options(d: dict, interface: type) -> SimpleNamespace:
    """The ``[eeg]`` settings a node received as a plain dict, type-checked as ``EEGConfig``
    fields (unset ones, which TOML cannot hold, take their default). Only the interface's
    ``OPTIONS`` exist, so a stage reading an option its node is not given fails loudly."""
    from ..config import Config

    config = Config()
    config.update({"eeg": d}, source="EEG workflow inputs")
    return SimpleNamespace(**{k: getattr(config.eeg, k) for k in interface.OPTIONS})


def node_options(eeg: dict, interface: type) -> dict:
    """The ``[eeg]`` options ``interface`` reads (its ``OPTIONS``) out of ``Config.to_dict()``:
    a node hashes only these, so changing another option does not re-run it."""
    return {k: eeg[k] for k in interface.OPTIONS if k in eeg}


class _CleanEEGInput(BaseInterfaceInputSpec):
    eeg_file = File(exists=True, mandatory=True, desc="raw BIDS EEG recording")
    eeg_derivatives = traits.Either(None, traits.Str, default=None, usedefault=True,
                                    desc="folder of already-corrected EEG (--eeg-derivatives, "
                                         "absolute)")
    repetition_time = traits.Either(None, traits.Float, default=None, usedefault=True)
    n_volumes = traits.Either(None, traits.Int, default=None, usedefault=True)
    discarded_by_scanner = traits.Int(0, usedefault=True)
    line_freq = traits.Either(None, traits.Float, default=None, usedefault=True)
    sidecar_digest = traits.Str("", usedefault=True,
                                desc="hash of the sidecars and marker file read (cache key)")
    options = traits.Dict(traits.Str, traits.Any, mandatory=True,
                          desc="the EEGConfig fields of CleanEEG.OPTIONS")


class _CleanEEGOutput(TraitedSpec):
    out_fif = File(exists=True, desc="cleaned, filtered, resampled EEG with volume annotations")
    out_report = File(exists=True, desc="JSON: what every stage did")
    repetition_time = traits.Float(desc="TR used (from BOLD, or marker spacing for EEG-only)")
    first_volume = traits.Int(desc="BOLD volume of the first volume annotation (partial coverage)")


class CleanEEG(SimpleInterface):
    """Read, align to volumes, remove gradient and BCG artifacts, filter, resample, re-reference."""

    input_spec = _CleanEEGInput
    output_spec = _CleanEEGOutput
    OPTIONS = ("volume_marker", "assume_eeg_bold_sync", "min_eeg_coverage", "gradient_correction",
               "bcg_correction", "eeg_l_freq", "eeg_h_freq", "notch", "eeg_sfreq")

    def _run_interface(self, runtime):
        from ..eeg.io import find_derivative_eeg
        from ..eeg.pipeline import clean_eeg

        i = self.inputs
        path = Path(i.eeg_file)
        is_derivative = False
        if i.eeg_derivatives:
            # None: no usable export for this run; its raw EEG is corrected here (warned)
            path = find_derivative_eeg(i.eeg_file, i.eeg_derivatives) or path
            is_derivative = path != Path(i.eeg_file)
        res = clean_eeg(path, _options(dict(i.options), CleanEEG), tr=i.repetition_time,
                        n_volumes=i.n_volumes, discarded_by_scanner=i.discarded_by_scanner,
                        line_freq=i.line_freq, is_derivative=is_derivative,
                        reference=i.eeg_file if is_derivative else None)
        if i.eeg_derivatives and not is_derivative:
            res.provenance["ArtifactCorrectionNote"] = (
                "no corrected export of this run in --eeg-derivatives: its raw EEG was corrected "
                "by this app")
        out = Path(runtime.cwd) / "clean_eeg.fif"
        res.raw.save(out, overwrite=True, verbose=False)
        rep = Path(runtime.cwd) / "clean_report.json"
        rep.write_text(json.dumps(res.provenance, indent=2))
        self._results.update(out_fif=str(out), out_report=str(rep), repetition_time=res.tr,
                             first_volume=res.first_volume)
        return runtime


class _SpectralInput(BaseInterfaceInputSpec):
    in_fif = File(exists=True, mandatory=True)
    repetition_time = traits.Float(mandatory=True)
    first_volume = traits.Int(0, usedefault=True, desc="BOLD volume of the first volume annotation")
    n_volumes = traits.Either(None, traits.Int, default=None, usedefault=True,
                              desc="volumes of the BOLD run (None: EEG-only)")
    options = traits.Dict(traits.Str, traits.Any, mandatory=True)
    protocol = traits.Str("", usedefault=True,
                          desc="--protocol whose participant settings were applied (sidecar)")


class _SpectralOutput(TraitedSpec):
    out_h5 = File(exists=True, desc="per-TR spectrogram (HDF5)")
    h5_metadata = traits.Dict(desc="its JSON sidecar")
    out_tsv = File(exists=True, desc="band power per channel per volume")
    tsv_metadata = traits.Dict(desc="its JSON sidecar")


class EEGSpectral(SimpleInterface):
    """Per-TR STFT array and band-power table from the cleaned EEG."""

    input_spec = _SpectralInput
    output_spec = _SpectralOutput
    OPTIONS = ("stft_window", "stft_overlap", "stft_taper", "stft_scale", "stft_context",
               "stft_window_trs", "stft_fmin", "stft_fmax", "eeg_h_freq", "bands")

    def _run_interface(self, runtime):
        import mne

        from ..eeg.pipeline import (spectral_features, volume_onsets_from_raw,
                                    write_bandpower_tsv, write_spectrogram_h5)

        opts = _options(dict(self.inputs.options), EEGSpectral)
        raw = mne.io.read_raw_fif(self.inputs.in_fif, preload=True, verbose=False)
        res = spectral_features(raw, volume_onsets_from_raw(raw), self.inputs.repetition_time, opts,
                                first_volume=self.inputs.first_volume,
                                n_volumes=self.inputs.n_volumes)
        h5 = Path(runtime.cwd) / "spectrogram.h5"
        tsv = Path(runtime.cwd) / "bandpower.tsv"
        meta = write_spectrogram_h5(h5, res, opts.stft_scale)
        if self.inputs.protocol:
            from ..evaluation.participant_check import protocol_record

            meta["Protocol"] = protocol_record(self.inputs.protocol)
        self._results.update(out_h5=str(h5), h5_metadata=meta,
                             out_tsv=str(tsv), tsv_metadata=write_bandpower_tsv(tsv, res))
        return runtime


class _MergeMetaInput(BaseInterfaceInputSpec):
    report = File(exists=True, mandatory=True, desc="CleanEEG's JSON report")
    extra = traits.Dict(value={}, usedefault=True, desc="fields added on top (e.g. spectral)")
    source_file = File(mandatory=True)
    keep = traits.List(traits.Str, value=[], usedefault=True,
                       desc="report keys to keep (empty keeps all)")


class _MergeMetaOutput(TraitedSpec):
    metadata = traits.Dict()


class EEGSidecar(SimpleInterface):
    """Assemble a derivative sidecar from the cleaning report and stage-specific fields."""

    input_spec = _MergeMetaInput
    output_spec = _MergeMetaOutput

    def _run_interface(self, runtime):
        report = json.loads(Path(self.inputs.report).read_text())
        if self.inputs.keep:
            report = {k: v for k, v in report.items() if k in self.inputs.keep}
        ents = parse_entities(self.inputs.source_file)
        meta = {**report, **dict(self.inputs.extra)}
        meta.setdefault("Sources", [source_uri(self.inputs.source_file)])
        if "task" in ents:
            meta.setdefault("TaskName", ents["task"])
        self._results["metadata"] = meta
        return runtime
