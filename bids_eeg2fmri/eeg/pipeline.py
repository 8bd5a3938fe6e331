"""The EEG stages in order, as two plain functions the nipype interfaces call.

:func:`clean_eeg`: read → volume onsets → gradient AAS (original rate) → resample → notch +
band-pass → BCG PCA-OBS → bad channels → average reference. BCG runs after resampling: PCA-OBS
fits one template per heartbeat and channel, which at 250 Hz costs a twentieth of what it costs at
5 kHz, and the BCG lies far below the anti-alias cut-off.

:func:`spectral_features`: per-TR STFT array and band power per channel per volume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import mne
import numpy as np

from ..bids.derivatives import source_uri
from . import artifacts, filtering, segments, spectral, triggers
from . import coverage as coverage_mod
from ..config import EEGConfig
from .io import read_eeg

VOLUME_ANNOTATION = "bold_volume"


@dataclass
class CleanResult:
    """Cleaned recording, its volume onsets (seconds) and what was done."""

    raw: mne.io.BaseRaw
    onsets: np.ndarray
    tr: float
    provenance: dict[str, Any]
    first_volume: int = 0


def clean_eeg(path: str | os.PathLike, options: EEGConfig, *, tr: float | None,
              n_volumes: int | None, discarded_by_scanner: int = 0,
              line_freq: float | None = None, is_derivative: bool = False,
              reference: str | os.PathLike | None = None) -> CleanResult:
    """Run the cleaning stages on one recording.

    Parameters
    ----------
    path
        The EEG file (raw BIDS, or the matched ``--eeg-derivatives`` file).
    options
        EEG options.
    tr, n_volumes
        RepetitionTime and volume count of the paired BOLD run; ``None`` for an EEG-only run.
    discarded_by_scanner
        ``NumberOfVolumesDiscardedByScanner`` of the BOLD run.
    line_freq
        ``PowerLineFrequency`` from the EEG sidecar (Hz); ``None`` disables the notch.
    is_derivative
        The EEG comes from ``--eeg-derivatives``: ``auto`` artifact steps are then off.
    reference
        The run's raw recording, when ``path`` is an export of it: an export holding fewer volume
        markers than the run has volumes is placed by aligning its markers to the raw's
        (:mod:`~bids_eeg2fmri.eeg.segments`).

    Returns
    -------
    CleanResult
    """
    path = Path(path)
    raw = read_eeg(path)
    sfreq_in = raw.info["sfreq"]
    filtering.check_sampling_rate(sfreq_in, options.eeg_h_freq, path)
    if line_freq is None:
        line_freq = raw.info.get("line_freq")
    locate = None
    if reference is not None and tr is not None and n_volumes is not None:
        locate = segments.raw_locator(raw, reference, tr=tr, n_volumes=n_volumes,
                                      discarded_by_scanner=discarded_by_scanner)
    onsets = triggers.find_volume_onsets_raw(
        raw, tr=tr, n_volumes=n_volumes, marker=options.volume_marker,
        assume_sync=options.assume_eeg_bold_sync, discarded_by_scanner=discarded_by_scanner,
        locate=locate, path=path)
    tr_used = float(tr) if tr is not None else onsets.spacing / sfreq_in
    samples, first, coverage = coverage_mod.covered_volumes(
        onsets.samples, onsets.first_volume, n_times=raw.n_times, sfreq=sfreq_in, tr=tr_used,
        n_volumes=n_volumes, min_fraction=options.min_eeg_coverage, path=path)
    prov: dict[str, Any] = {
        "Sources": [source_uri(path, "eeg" if is_derivative else "raw")],
        "EEGIsDerivative": is_derivative,
        "OriginalSamplingFrequency": sfreq_in,
        "VolumeOnsetSource": onsets.source,
        "VolumeMarker": onsets.marker,
        "VolumeMarkerRepairs": onsets.repairs,
        "VolumeOnsetSamples": samples.tolist(),
        "RepetitionTime": tr_used,
        "EEGCoverage": coverage,
        "EEGPlacement": onsets.placement,
    }

    grad_mode = options.gradient_correction
    bcg_mode = options.bcg_correction
    if is_derivative:
        # Derivative EEG (e.g. BrainVision Analyzer export) is already corrected; 'auto' must not
        # correct it twice. An explicit aas/obs still runs.
        grad_mode = "off" if grad_mode == "auto" else grad_mode
        bcg_mode = "off" if bcg_mode == "auto" else bcg_mode
        prov["ArtifactCorrectionNote"] = ("EEG from --eeg-derivatives: 'auto' gradient and BCG "
                                          "correction are off")
    grad = artifacts.correct_gradient(raw, samples, grad_mode, path=path)
    prov["GradientCorrection"] = {"Requested": options.gradient_correction, **grad.as_dict()}

    filtering.resample(raw, options.eeg_sfreq)
    prov["Resampling"] = {"From": sfreq_in, "To": raw.info["sfreq"],
                          "Method": f"mne Raw.resample(method='{filtering.RESAMPLE_METHOD}')"}
    prov["Filter"] = filtering.bandpass(raw, options.eeg_l_freq, options.eeg_h_freq,
                                        line_freq=line_freq, notch=options.notch)

    bcg = artifacts.correct_bcg(raw, bcg_mode, path=path)
    prov["BCGCorrection"] = {"Requested": options.bcg_correction, **bcg.as_dict()}

    bads = filtering.handle_bad_channels(raw, path=path)
    prov["BadChannels"] = bads.as_dict()
    filtering.average_reference(raw)
    prov["Reference"] = "average"

    times = samples / sfreq_in
    add_volume_annotations(raw, times, tr_used)
    return CleanResult(raw, times, tr_used, prov, first)


def add_volume_annotations(raw: mne.io.BaseRaw, times: np.ndarray, tr: float) -> None:
    """Add one ``bold_volume`` annotation (duration TR) per volume onset (s from first sample)."""
    old = raw.annotations
    if raw.info["meas_date"] is None:
        # Without a measurement date MNE reads onsets given to set_annotations as relative to the
        # first sample, while raw.annotations reports them shifted by first_time.
        onset = np.concatenate([np.asarray(old.onset) - raw.first_time, times])
        orig = None
    else:
        onset = np.concatenate([np.asarray(old.onset), times + raw.first_time])
        orig = old.orig_time
    ann = mne.Annotations(onset, np.concatenate([old.duration, np.full(times.size, tr)]),
                          np.concatenate([np.asarray(old.description, dtype=object),
                                          np.full(times.size, VOLUME_ANNOTATION, dtype=object)]),
                          orig_time=orig)
    raw.set_annotations(ann)


def volume_onsets_from_raw(raw: mne.io.BaseRaw) -> np.ndarray:
    """Volume onsets (seconds from the first sample) stored as annotations by :func:`clean_eeg`."""
    ann = raw.annotations
    sel = np.array([d == VOLUME_ANNOTATION for d in ann.description], dtype=bool)
    return np.sort(np.asarray(ann.onset)[sel] - raw.first_time)


@dataclass
class SpectralResult:
    """Per-TR spectrogram and band-power table of one run."""

    spectrogram: np.ndarray
    frequencies: np.ndarray
    frame_times: np.ndarray
    channels: list[str]
    spec_volumes: np.ndarray
    spec_onsets: np.ndarray
    bandpower_columns: list[str]
    bandpower: np.ndarray
    bandpower_volumes: np.ndarray
    bandpower_onsets: np.ndarray
    metadata: dict[str, Any]


def spectral_features(raw: mne.io.BaseRaw, onsets: np.ndarray, tr: float,
                      options: EEGConfig, *, first_volume: int = 0,
                      n_volumes: int | None = None) -> SpectralResult:
    """Per-TR STFT (volumes × channels × frequencies × frames) and band power of EEG channels.

    Band power always uses the volume's own TR (``[onset, onset + TR)``); the spectrogram extends
    back over ``options.stft_context`` preceding TRs when asked. ``onsets[0]`` belongs to BOLD
    volume ``first_volume`` of a run of ``n_volumes`` (the EEG may cover only part of the run);
    the volume indices written count from the run's first volume.
    """
    picks = mne.pick_types(raw.info, eeg=True, exclude=())
    names = [raw.ch_names[i] for i in picks]
    data = raw.get_data(picks=picks)
    sfreq = raw.info["sfreq"]
    seg = spectral.volume_segments(data, sfreq, onsets, tr, context=options.stft_context)
    window = spectral.frame_seconds(options.stft_window, options.stft_window_trs, tr)
    fmin, fmax = options.stft_fmin, options.stft_fmax or options.eeg_h_freq
    spec, freqs, ftimes = spectral.spectrogram(
        seg.data, sfreq, window=window, overlap=options.stft_overlap,
        taper=options.stft_taper, fmin=fmin, fmax=fmax, scale=options.stft_scale)
    own = seg if options.stft_context == 0 else spectral.volume_segments(data, sfreq, onsets, tr)
    cols, table = spectral.bandpower_table(own.data, sfreq, names, options.bands,
                                           window=window,
                                           overlap=options.stft_overlap, taper=options.stft_taper)
    nperseg, noverlap = spectral.frame_params(sfreq, window, options.stft_overlap)
    seg.volume_indices = seg.volume_indices + first_volume
    if own is not seg:
        own.volume_indices = own.volume_indices + first_volume
    meta = {
        "SamplingFrequency": sfreq,
        "RepetitionTime": tr,
        "STFT": {"WindowLength": window, "WindowSamples": nperseg,
                 "WindowTRs": options.stft_window_trs or None,
                 "FrequencyRange": [fmin, fmax], "FramesPerVolume": int(spec.shape[-1]),
                 "Overlap": options.stft_overlap, "OverlapSamples": noverlap,
                 "Taper": options.stft_taper, "ContextTRs": options.stft_context,
                 "SegmentStart": f"volume onset - {options.stft_context} x RepetitionTime",
                 "SegmentLength": float(seg.data.shape[-1] / sfreq),
                 "Scaling": "scipy.signal.stft 'spectrum' (FFT of tapered frame / sum of taper)",
                 "Boundary": "frames lie inside the segment (boundary=None, padded=False)"},
        "Bands": {k: list(v) for k, v in options.bands.items()},
        "EEGCoverage": coverage_mod.describe(seg.volume_indices, n_volumes),
    }
    return SpectralResult(spec, freqs, ftimes, names, seg.volume_indices, seg.onsets, cols,
                          table, own.volume_indices, own.onsets, meta)


# netCDF-4 dimension (coordinate) of each spectrogram axis and the dataset that holds its values.
SPECTROGRAM_DIMS = (("volume", "volume_indices"), ("channel", "channels"),
                    ("frequency", "frequencies"), ("frame", "frame_times"))


def attach_dimension_scales(h5: h5py.File) -> None:
    """Make the spectrogram file netCDF-4: named HDF5 dimension scales on every dataset.

    Each axis gets a coordinate dataset named after it (``volume``, ``channel``, ``frequency``,
    ``frame``) marked as a dimension scale and attached to the matching axis of ``spectrogram``
    and of the 1-D datasets, so ``xarray.open_dataset(path, engine="h5netcdf")`` shows named
    coordinates instead of ``phony_dim_N``. The older dataset names stay for existing readers.
    """
    for dim, source in SPECTROGRAM_DIMS:
        values = h5[source][()]
        scale = h5.create_dataset(dim, data=values, dtype=h5[source].dtype)
        scale.make_scale(dim)
        h5[source].dims[0].attach_scale(scale)
        h5["spectrogram"].dims[[d for d, _ in SPECTROGRAM_DIMS].index(dim)].attach_scale(scale)
    h5["volume_onsets"].dims[0].attach_scale(h5["volume"])
    h5["volume"].attrs["long_name"] = "0-based BOLD volume index"
    h5["frequency"].attrs["units"] = "Hz"
    h5["frame"].attrs["units"] = "s"
    h5["frame"].attrs["long_name"] = "frame centre from the segment start"
    h5["volume_onsets"].attrs["units"] = "s"


def write_spectrogram_h5(path: str | os.PathLike, res: SpectralResult, scale: str) -> dict:
    """Write the spectrogram HDF5 file; return its JSON sidecar content."""
    unit = "uV" if scale == "magnitude" else "dB re 1 uV^2"
    with h5py.File(path, "w") as h5:
        d = h5.create_dataset("spectrogram", data=res.spectrogram, compression="gzip",
                              compression_opts=4, shuffle=True)
        d.attrs["axes"] = ["volume", "channel", "frequency", "frame"]
        d.attrs["units"] = unit
        d.attrs["scale"] = scale
        h5.create_dataset("frequencies", data=res.frequencies)
        h5.create_dataset("frame_times", data=res.frame_times)
        h5.create_dataset("channels", data=np.array(res.channels, dtype=h5py.string_dtype()))
        h5.create_dataset("volume_indices", data=res.spec_volumes)
        h5.create_dataset("volume_onsets", data=res.spec_onsets)
        attach_dimension_scales(h5)
    return {
        "Description": "Per-TR short-time Fourier transform of the preprocessed EEG",
        "Axes": ["volume", "channel", "frequency", "frame"],
        "Shape": list(res.spectrogram.shape),
        "Datasets": {"spectrogram": f"float32 {scale}", "frequencies": "Hz",
                     "frame_times": "s from segment start (frame centres)", "channels": "names",
                     "volume_indices": "0-based BOLD volume index",
                     "volume_onsets": "s from the first EEG sample"},
        "Scale": scale,
        "Units": unit,
        "Frequencies": res.frequencies.tolist(),
        "FrameTimes": res.frame_times.tolist(),
        "Channels": res.channels,
        "VolumeIndices": res.spec_volumes.tolist(),
        "VolumeOnsets": res.spec_onsets.tolist(),
        **res.metadata,
    }


def write_bandpower_tsv(path: str | os.PathLike, res: SpectralResult) -> dict:
    """Write the band-power TSV (one row per volume); return its JSON sidecar content."""
    lines = ["\t".join(res.bandpower_columns)]
    lines += ["\t".join(f"{v:.6g}" for v in row) for row in res.bandpower]
    Path(path).write_text("\n".join(lines) + "\n")
    bands = res.metadata["Bands"]
    cols = {}
    for c in res.bandpower_columns:
        ch, band = c.rsplit("_", 1)
        lo, hi = bands[band]
        cols[c] = {"Description": f"EEG power of channel {ch} in the {band} band "
                                  f"[{lo:g}, {hi:g}) Hz over the volume's TR (Welch, STFT frames)",
                   "Units": "uV^2"}
    return {
        "Description": "Band power per EEG channel per BOLD volume",
        "VolumeIndices": res.bandpower_volumes.tolist(),
        "VolumeOnsets": res.bandpower_onsets.tolist(),
        "RepetitionTime": res.metadata["RepetitionTime"],
        "SamplingFrequency": 1.0 / res.metadata["RepetitionTime"],
        "Bands": bands,
        "STFT": res.metadata["STFT"],
        "EEGCoverage": res.metadata["EEGCoverage"],
        **cols,
    }
