"""Bricman & Borst 2021's raw EEG input: the cleaned EEG time series, band-limited, resampled and
cut into one segment per BOLD volume.

``--eeg-features raw`` replaces each EEG→fMRI run's spectrogram by the cleaned EEG
(``desc-preproc_eeg``) that the spectrogram was computed from. The series is band-pass filtered to
``band`` (MNE's FIR), resampled to ``sfreq`` (MNE's polyphase resampler) and cut at the volume
onsets the spectrogram file records (``volume_onsets``), ``round(TR × sfreq)`` samples per volume.
The result has the spectrogram's layout with one "frequency" row and the samples as frames,
``(volumes, channels, 1, samples)``, so windows, normalisation (z-score per subject and channel on
the training volumes) and leakage-safe splits are the same code as for the other features; a
window of ``W`` TRs is the concatenated ``W × samples`` series of every channel (30 s by default,
as in the paper). Rows for volumes without EEG stay invalid exactly as in the spectrogram.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import mne
import numpy as np

from ..errors import DataError
from .windows import DataSpec, RunArrays

#: Defaults: the band the seed papers' EEG is filtered to, a rate above twice its top, 30 s windows.
RAW_BAND = (1.0, 30.0)
RAW_SFREQ = 64.0
RAW_WINDOW_S = 30.0
CLEANED_EXTENSIONS = (".vhdr", ".fif", ".edf", ".set")


def cleaned_eeg_path(spectrogram: str | os.PathLike) -> Path:
    """The cleaned EEG (``<src>_desc-preproc_eeg.<ext>``) beside a ``desc-stft_spectrogram.h5``."""
    spectrogram = Path(spectrogram)
    stem = spectrogram.name.replace("_desc-stft_spectrogram.h5", "_desc-preproc_eeg")
    for ext in CLEANED_EXTENSIONS:
        if (spectrogram.parent / (stem + ext)).is_file():
            return spectrogram.parent / (stem + ext)
    raise DataError("--eeg-features raw reads the cleaned EEG, but no "
                    f"{stem}.{{vhdr,fif,edf,set}} lies beside the spectrogram", path=spectrogram)


def segment_volumes(data: np.ndarray, sfreq: float, onsets: np.ndarray, tr: float, *,
                    band: Sequence[float] = RAW_BAND, out_sfreq: float = RAW_SFREQ
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Band-limit, resample and cut ``data`` into one segment per volume onset.

    Parameters
    ----------
    data
        ``(n_channels, n_samples)`` EEG at ``sfreq`` Hz.
    onsets
        Volume onsets in seconds from the first sample.
    tr
        Repetition time: each segment covers ``[onset, onset + TR)``.
    band
        Pass band ``(low, high)`` in Hz; ``high`` must stay below half of ``out_sfreq``.
    out_sfreq
        Sampling rate of the segments.

    Returns
    -------
    segments : ndarray
        ``(n_onsets, n_channels, 1, round(TR × out_sfreq))`` float32.
    complete : ndarray
        ``(n_onsets,)`` bool, False where a segment runs past the recording (left zero).
    """
    lo, hi = float(band[0]), float(band[1])
    if not 0 <= lo < hi or hi >= out_sfreq / 2:
        raise DataError(f"raw EEG band {lo:g}-{hi:g} Hz must lie below half the raw sampling "
                        f"rate {out_sfreq:g} Hz")
    x = np.asarray(data, dtype=np.float64)
    x = mne.filter.filter_data(x, sfreq, lo or None, hi, verbose=False)
    x = mne.filter.resample(x, up=out_sfreq, down=sfreq, method="polyphase", verbose=False)
    n = int(round(tr * out_sfreq))
    start = np.round(np.asarray(onsets, dtype=float) * out_sfreq).astype(int)
    complete = (start >= 0) & (start + n <= x.shape[1])
    out = np.zeros((len(start), x.shape[0], 1, n), dtype=np.float32)
    for i in np.flatnonzero(complete):
        out[i, :, 0] = x[:, start[i]:start[i] + n]
    return out, complete


def read_raw_volumes(spectrogram: str | os.PathLike, run: RunArrays, channels: Sequence[str],
                     tr: float, *, band: Sequence[float] = RAW_BAND,
                     out_sfreq: float = RAW_SFREQ) -> tuple[np.ndarray, np.ndarray]:
    """The cleaned EEG of ``run`` cut per volume, aligned with its spectrogram rows.

    The spectrogram's rows and ``volume_onsets`` name the volumes that have EEG; the run's
    ``eeg_valid`` holds the same volumes after the discarded leading ones, i.e. its last rows.

    Returns
    -------
    eeg : ndarray
        ``(n_volumes, len(channels), 1, samples)``; zero where there is no EEG.
    valid : ndarray
        ``(n_volumes,)`` bool.
    """
    try:
        with h5py.File(spectrogram, "r") as fh:
            onsets = np.asarray(fh["volume_onsets"][:], dtype=float)
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read the volume onsets: {exc}", path=spectrogram) from None
    rows = np.flatnonzero(run.eeg_valid)
    if len(onsets) < len(rows):
        raise DataError(f"{len(onsets)} volume onsets for {len(rows)} volumes with EEG",
                        path=spectrogram)
    path = cleaned_eeg_path(spectrogram)
    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"cannot read the cleaned EEG: {exc}", path=path) from None
    missing = [c for c in channels if c not in raw.ch_names]
    if missing:
        raise DataError(f"the cleaned EEG lacks channel(s) {', '.join(missing[:5])} of the "
                        "spectrogram (--eeg-features raw cannot interpolate)", path=path)
    segs, complete = segment_volumes(raw.get_data(picks=list(channels)), raw.info["sfreq"],
                                     onsets[len(onsets) - len(rows):], tr, band=band,
                                     out_sfreq=out_sfreq)
    eeg = np.zeros((run.n_volumes,) + segs.shape[1:], dtype=np.float32)
    eeg[rows] = segs
    valid = np.zeros(run.n_volumes, dtype=bool)
    valid[rows] = complete
    # Volts → microvolts: z-scoring removes the scale, but float32 statistics prefer O(1) values.
    return eeg * np.float32(1e6), valid


def raw_spec(spec: DataSpec, band: Sequence[float], out_sfreq: float, n_samples: int) -> DataSpec:
    """``spec`` for raw segments: the band centre as the one frequency, samples as frames."""
    lo, hi = float(band[0]), float(band[1])
    return dataclasses.replace(spec, frequencies=[(lo + hi) / 2], n_frames=int(n_samples),
                               eeg_bands=None,
                               eeg_raw={"band": [lo, hi], "sfreq": float(out_sfreq)})


def raw_runs(runs: Sequence[RunArrays], spec: DataSpec, spectrograms: Sequence[Path], *,
             band: Sequence[float] = RAW_BAND, out_sfreq: float = RAW_SFREQ
             ) -> tuple[list[RunArrays], DataSpec]:
    """The runs with their spectrogram replaced by raw EEG segments, and their description."""
    out = []
    for run, path in zip(runs, spectrograms, strict=True):
        eeg, valid = read_raw_volumes(path, run, spec.channels, spec.tr, band=band,
                                      out_sfreq=out_sfreq)
        out.append(dataclasses.replace(run, eeg=eeg, eeg_valid=valid, eeg_truth=None))
    return out, raw_spec(spec, band, out_sfreq, out[0].eeg.shape[3])


def as_model_input(eeg: np.ndarray, valid: np.ndarray, given: DataSpec, model: DataSpec,
                   spectrogram: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, DataSpec]:
    """One run's EEG in the representation ``model`` was trained on.

    ``eeg``/``valid`` are the run's spectrogram rows (conformed to the model's channels) and
    ``given`` describes them; a band-power model gets their band power, a raw model the cleaned
    EEG beside ``spectrogram`` cut per volume. The returned description is what
    :meth:`DataSpec.check_compatible` compares with the model's (for band power: with the
    spectrogram it was pooled from).
    """
    from .bandpool import band_spec, pool_bands

    if model.eeg_bands is not None:
        bands = model.eeg_bands["bands"]
        return pool_bands(eeg, given.frequencies, bands), valid, band_spec(given, bands)
    if model.eeg_raw is not None:
        band, sfreq = model.eeg_raw["band"], model.eeg_raw["sfreq"]
        rows = RunArrays(eeg=eeg, bold=np.zeros((len(eeg), 1), np.float32), subject="",
                         eeg_valid=valid)
        raw, ok = read_raw_volumes(spectrogram, rows, given.channels, given.tr, band=band,
                                   out_sfreq=sfreq)
        return raw, ok, raw_spec(given, band, sfreq, raw.shape[3])
    return eeg, valid, given
