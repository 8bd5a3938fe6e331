"""Per-TR short-time Fourier transform and band power of cleaned EEG.

Every retained BOLD volume ``t`` gets the EEG segment ``[onset_t - context·TR, onset_t + TR)``;
each segment is cut into tapered frames (``window`` seconds, ``overlap`` fraction) and transformed.
Frames never cross the segment's end, exactly like ``scipy.signal.stft(..., boundary=None,
padded=False)``, so no sample of the next volume leaks into a volume's spectrogram.

Scaling follows ``scipy.signal.stft``'s default (``scaling='spectrum'``: the FFT of the tapered
frame divided by the taper's sum), so a sinusoid of amplitude A shows up with magnitude ≈ A/2 in its
bin. Band power uses the density scaling of Welch's method on the same frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

SCALES = ("log-power", "magnitude")
# Floor under power before taking the log, in µV²: far below any EEG value, keeps log finite on
# channels that are exactly zero (e.g. a reference channel after re-referencing).
LOG_FLOOR_UV2 = 1e-12


@dataclass
class Segments:
    """EEG cut into one segment per retained volume.

    Attributes
    ----------
    data
        Array ``(n_volumes, n_channels, n_samples)`` in the units of the input.
    volume_indices
        Index of each segment's volume in the BOLD series (0-based).
    onsets
        Volume onset of each segment in seconds from the start of the EEG.
    start_offset
        Seconds from the volume onset back to the segment start (``context · TR``).
    """

    data: np.ndarray
    volume_indices: np.ndarray
    onsets: np.ndarray
    start_offset: float = 0.0
    dropped: list[int] = field(default_factory=list)


def volume_segments(data: np.ndarray, sfreq: float, onsets: Sequence[float], tr: float, *,
                    context: int = 0) -> Segments:
    """Cut continuous data into one fixed-length segment per volume.

    Parameters
    ----------
    data
        ``(n_channels, n_times)`` continuous data.
    sfreq
        Sampling frequency in Hz.
    onsets
        Volume onsets in seconds from the first sample, one per BOLD volume.
    tr
        Repetition time in seconds.
    context
        Number of preceding TRs the segment extends back over (0 = the volume's own TR only).

    Returns
    -------
    Segments
        Volumes whose segment lies completely inside the data; the others are listed in
        ``dropped`` (this only happens at the start when ``context`` > 0, or at the end when the
        recording stops inside the last volume).
    """
    if context < 0:
        raise ValueError(f"context must be >= 0 TRs, got {context}")
    n_tr = int(np.floor(tr * sfreq + 1e-9))
    n_back = int(round(context * tr * sfreq))
    length = n_tr + n_back
    starts = np.round(np.asarray(onsets, float) * sfreq).astype(np.int64) - n_back
    keep = (starts >= 0) & (starts + length <= data.shape[1])
    idx = np.flatnonzero(keep)
    segs = np.empty((idx.size, data.shape[0], length), dtype=np.float64)
    for i, v in enumerate(idx):
        segs[i] = data[:, starts[v]:starts[v] + length]
    return Segments(segs, idx, np.asarray(onsets, float)[idx], n_back / sfreq,
                    [int(v) for v in np.flatnonzero(~keep)])


def frame_params(sfreq: float, window: float, overlap: float) -> tuple[int, int]:
    """Return ``(nperseg, noverlap)`` in samples for a window in seconds and an overlap fraction."""
    nperseg = int(round(window * sfreq))
    if nperseg < 2:
        raise ValueError(f"STFT window of {window} s is shorter than 2 samples at {sfreq} Hz")
    noverlap = int(round(overlap * nperseg))
    if not 0 <= noverlap < nperseg:
        raise ValueError(f"STFT overlap {overlap} must be in [0, 1)")
    return nperseg, noverlap


def frame_seconds(window: float, window_trs: float, tr: float) -> float:
    """STFT frame length in seconds: ``window_trs`` TRs when it is > 0, else ``window``.

    A frame of whole TRs makes the frames of a volume's segment line up with its TRs (one
    frame per TR with no overlap: Calhas et al.'s STFT), at any repetition time.
    """
    return window_trs * tr if window_trs > 0 else window


def _check_length(x: np.ndarray, nperseg: int) -> None:
    # scipy would shorten the window to the segment silently; a short segment is our error.
    if x.shape[-1] < nperseg:
        raise ValueError(f"segment of {x.shape[-1]} samples is shorter than the STFT window "
                         f"({nperseg} samples)")


def stft_segments(segments: np.ndarray, sfreq: float, *, window: float = 1.0,
                  overlap: float = 0.5, taper: str = "hann", fmin: float = 0.0,
                  fmax: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex STFT of every segment, frames kept inside each segment.

    Parameters
    ----------
    segments
        ``(..., n_samples)`` data, e.g. ``(n_volumes, n_channels, n_samples)``.
    sfreq
        Sampling frequency in Hz.
    window, overlap
        Frame length in seconds and overlap as a fraction of it.
    taper
        Any window name ``scipy.signal.get_window`` knows (periodic form, as scipy's STFT uses).
    fmin, fmax
        Keep frequencies ``fmin <= f <= fmax`` only (``fmax=None`` keeps all up to Nyquist; an
        ``fmin`` between 0 and the first bin drops the DC bin).

    Returns
    -------
    spec : ndarray, complex
        ``(..., n_freqs, n_frames)`` with ``scipy.signal.stft``'s ``'spectrum'`` scaling.
    freqs : ndarray
        Frequencies in Hz.
    times : ndarray
        Frame centres in seconds from the segment start.
    """
    nperseg, noverlap = frame_params(sfreq, window, overlap)
    x = np.asarray(segments, float)
    _check_length(x, nperseg)
    freqs, times, spec = signal.stft(x, sfreq, window=taper, nperseg=nperseg, noverlap=noverlap,
                                     detrend=False, boundary=None, padded=False,
                                     scaling="spectrum", axis=-1)
    keep = freqs >= fmin - 1e-9
    if fmax is not None:
        keep &= freqs <= fmax + 1e-9
    spec, freqs = spec[..., keep, :], freqs[keep]
    return spec, freqs, times


def spectrogram(segments: np.ndarray, sfreq: float, *, window: float = 1.0, overlap: float = 0.5,
                taper: str = "hann", fmin: float = 0.0, fmax: float | None = None,
                scale: str = "log-power") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude or log-power spectrogram of volts-valued segments.

    Parameters
    ----------
    segments
        ``(n_volumes, n_channels, n_samples)`` EEG in volts (MNE's unit).
    sfreq, window, overlap, taper, fmin, fmax
        As in :func:`stft_segments`.
    scale
        ``"magnitude"`` (µV, STFT modulus) or ``"log-power"`` (dB re 1 µV², ``10·log10|X|²``).

    Returns
    -------
    spec : ndarray, float32
        ``(n_volumes, n_channels, n_freqs, n_frames)``.
    freqs, times : ndarray
        As in :func:`stft_segments`.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    z, freqs, times = stft_segments(np.asarray(segments) * 1e6, sfreq, window=window,
                                    overlap=overlap, taper=taper, fmin=fmin, fmax=fmax)
    mag = np.abs(z)
    if scale == "magnitude":
        return mag.astype(np.float32), freqs, times
    return (10.0 * np.log10(np.maximum(mag ** 2, LOG_FLOOR_UV2))).astype(np.float32), freqs, times


def welch_psd(segments: np.ndarray, sfreq: float, *, window: float = 1.0, overlap: float = 0.5,
              taper: str = "hann") -> tuple[np.ndarray, np.ndarray]:
    """One-sided Welch power spectral density of each segment, from the STFT frames.

    Parameters
    ----------
    segments
        ``(..., n_samples)`` data.
    sfreq, window, overlap, taper
        As in :func:`stft_segments`.

    Returns
    -------
    psd : ndarray
        ``(..., n_freqs)`` in (input unit)²/Hz: ``scipy.signal.welch(..., detrend=False)``.
    freqs : ndarray
        Frequencies in Hz.
    """
    nperseg, noverlap = frame_params(sfreq, window, overlap)
    x = np.asarray(segments, float)
    _check_length(x, nperseg)
    freqs, psd = signal.welch(x, sfreq, window=taper, nperseg=nperseg, noverlap=noverlap,
                              detrend=False, scaling="density", average="mean", axis=-1)
    return psd, freqs


def band_power(psd: np.ndarray, freqs: np.ndarray,
               bands: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Integrate a PSD over frequency bands.

    Parameters
    ----------
    psd
        ``(..., n_freqs)`` power spectral density.
    freqs
        Its frequencies in Hz (evenly spaced).
    bands
        Band name → ``[low, high]`` in Hz; bins with ``low <= f < high`` are summed (half-open, so
        adjacent bands never share a bin) and multiplied by the bin width.

    Returns
    -------
    dict
        Band name → ``(...)`` power in (input unit)².

    Raises
    ------
    ValueError
        When a band holds no frequency bin at this resolution.
    """
    df = float(freqs[1] - freqs[0])
    out = {}
    for name, (lo, hi) in bands.items():
        sel = (freqs >= lo - 1e-9) & (freqs < hi - 1e-9)
        if not sel.any():
            raise ValueError(f"band {name} [{lo}, {hi}) Hz holds no frequency bin at a "
                             f"resolution of {df:g} Hz; lengthen the STFT window")
        out[name] = psd[..., sel].sum(axis=-1) * df
    return out


def bandpower_table(segments: np.ndarray, sfreq: float, ch_names: Sequence[str],
                    bands: Mapping[str, Sequence[float]], *, window: float = 1.0,
                    overlap: float = 0.5, taper: str = "hann") -> tuple[list[str], np.ndarray]:
    """Band power per channel per volume, as the columns of the band-power TSV.

    Parameters
    ----------
    segments
        ``(n_volumes, n_channels, n_samples)`` EEG in volts, one TR per volume.
    sfreq, window, overlap, taper
        As in :func:`welch_psd`.
    ch_names
        Channel names, in the order of ``segments``' second axis.
    bands
        As in :func:`band_power`.

    Returns
    -------
    columns : list of str
        ``<channel>_<band>``, channel-major.
    values : ndarray
        ``(n_volumes, n_channels · n_bands)`` in µV².
    """
    psd, freqs = welch_psd(np.asarray(segments) * 1e6, sfreq, window=window, overlap=overlap,
                           taper=taper)
    powers = band_power(psd, freqs, bands)
    names = list(bands)
    values = np.stack([powers[b] for b in names], axis=-1)  # (vol, ch, band)
    columns = [f"{ch}_{b}" for ch in ch_names for b in names]
    return columns, values.reshape(values.shape[0], -1)
