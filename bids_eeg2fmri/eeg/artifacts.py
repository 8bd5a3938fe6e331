"""MR gradient and ballistocardiogram (BCG) artifact correction, using MNE's implementations.

Gradient: average artifact subtraction (AAS, Allen et al. 2000) with MNE's
:class:`mne.preprocessing.GradientRemover` and a sliding window of neighbouring volumes.
BCG: R-peaks from the ECG channel (:func:`mne.preprocessing.find_ecg_events`) and MNE's PCA-OBS
(:func:`mne.preprocessing.apply_pca_obs`, Niazy et al. 2005). Both need mne >= 1.13.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import mne
import numpy as np
from mne.preprocessing import GradientRemover, apply_pca_obs, find_ecg_events
from threadpoolctl import threadpool_limits

from ..errors import DataError

log = logging.getLogger("bids_eeg2fmri.eeg")

# Template RMS / residual RMS above which the volume-locked template is taken for an artifact.
# Without an artifact the ratio is ~1/sqrt(n_epochs) (~0.16 for 40 epochs); gradient artifacts
# are orders of magnitude above EEG, so the ratio is >> 1.
GRADIENT_DETECT_RATIO = 1.0
DETECT_MAX_EPOCHS = 40
# Channels corrected together: bounds the extra memory to this many channels of the recording.
CHUNK_CHANNELS = 8
# Fewer heartbeats give no usable PCA of the heartbeat epochs (about 15 s of recording).
MIN_HEARTBEATS = 12


class _FastGradientRemover(GradientRemover):
    """MNE's AAS with each volume epoch detrended once.

    :class:`mne.preprocessing.GradientRemover` detrends every epoch again for each template it
    enters (window + 1 times) with :func:`scipy.signal.detrend`; at 5 kHz that made AAS take about
    six minutes for 64 channels x 650 s here. This subclass returns the same least-squares linear
    detrend (projection on an orthonormal constant + ramp basis) and caches it per epoch, so the
    template windows, weights, bounds and checks stay MNE's. Equality with MNE's own class is a test.
    """

    def __init__(self, eeg_data, tr_events, window=(4, 4), tr_tol=0):
        super().__init__(eeg_data, tr_events, window=window, tr_tol=tr_tol)
        n = self.tr_spacing
        ramp = np.arange(n, dtype=float) - (n - 1) / 2.0
        self._basis = np.vstack([np.full(n, 1.0 / np.sqrt(n)), ramp / np.linalg.norm(ramp)])
        self._cache: dict[int, np.ndarray] = {}

    def get_tr_detrended(self, n):
        """Linearly detrended data of TR ``n`` (cached)."""
        out = self._cache.get(n)
        if out is None:
            x = self.get_tr(n)
            out = x - (x @ self._basis.T) @ self._basis
            self._cache[n] = out
        return out


@dataclass
class GradientReport:
    """What the gradient step found and did (recorded in the sidecar)."""

    method: str
    detected: bool | None
    template_ratio: float | None
    window: list[int] | None = None
    n_volumes: int = 0

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def _epoch_ratio(data: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Per-channel RMS of the mean volume epoch over the RMS of what is left around it."""
    ramp = np.arange(length, dtype=float) - (length - 1) / 2.0
    basis = np.vstack([np.full(length, 1.0 / np.sqrt(length)), ramp / np.linalg.norm(ramp)])
    epochs = np.stack([data[:, s:s + length] for s in starts])  # (epochs, ch, time)
    epochs = epochs - (epochs @ basis.T) @ basis
    template = epochs.mean(axis=0)
    resid = epochs - template
    t_rms = np.sqrt(np.mean(template ** 2, axis=-1))
    r_rms = np.sqrt(np.mean(resid ** 2, axis=(0, 2)))
    return t_rms / np.maximum(r_rms, np.finfo(float).tiny)


def detect_gradient_artifact(raw: mne.io.BaseRaw, onsets: np.ndarray) -> float:
    """Measure how strongly the EEG carries an artifact locked to the volume onsets.

    Parameters
    ----------
    raw
        Continuous recording at its original rate (before any filtering).
    onsets
        Volume onsets in samples.

    Returns
    -------
    float
        Median over EEG channels of (RMS of the average detrended volume epoch) / (RMS of the
        epochs around that average), over up to 40 volumes from the middle of the run. Compare
        with :data:`GRADIENT_DETECT_RATIO`.
    """
    picks = mne.pick_types(raw.info, eeg=True, exclude="bads")
    length = int(np.median(np.diff(onsets)))
    usable = onsets[onsets + length <= raw.n_times]
    mid = max(0, usable.size // 2 - DETECT_MAX_EPOCHS // 2)
    starts = usable[mid:mid + DETECT_MAX_EPOCHS]
    if starts.size < 2 or picks.size == 0:
        return 0.0
    ratios = [_epoch_ratio(raw.get_data(picks=picks[i:i + CHUNK_CHANNELS]), starts, length)
              for i in range(0, picks.size, CHUNK_CHANNELS)]
    return float(np.median(np.concatenate(ratios)))


def _aas_chunk(data: np.ndarray, onsets: np.ndarray, window: tuple[int, int],
               tr_tol: int) -> np.ndarray:
    """AAS of one channel chunk; the first/last volumes get one-sided windows of the same size."""
    before, after = window
    total = before + after
    main = _FastGradientRemover(data, onsets, window=window, tr_tol=tr_tol)
    out = main.correct()
    n_tr = main.n_tr
    # MNE leaves a zero template (no correction) where the symmetric window does not fit; use
    # the following (at the start) or preceding (at the end) volumes there instead.
    head = range(0, min(before, n_tr))
    tail = range(max(n_tr - after, before), n_tr)
    if head and n_tr > total:
        edge = _FastGradientRemover(data, onsets, window=(0, total), tr_tol=tr_tol)
        for n in head:
            s, e = edge._tr_bounds(n)
            out[:, s:e] = edge.get_tr_corrected(n)
    if tail and n_tr > total:
        edge = _FastGradientRemover(data, onsets, window=(total, 0), tr_tol=tr_tol)
        for n in tail:
            s, e = edge._tr_bounds(n)
            out[:, s:e] = edge.get_tr_corrected(n)
    return out


def remove_gradient(raw: mne.io.BaseRaw, onsets: np.ndarray, *, window: tuple[int, int] = (4, 4),
                    path: str | os.PathLike | None = None) -> None:
    """Subtract the gradient artifact in place with AAS over a sliding window of volumes.

    Parameters
    ----------
    raw
        Preloaded recording at its original rate; every data channel (EEG, ECG, EOG) is corrected,
        since the ECG needs it for R-peak detection.
    onsets
        Volume onsets in samples (one per volume; the artifact of each lasts one TR).
    window
        Volumes before and after each volume averaged into its template.
    path
        The EEG file, named in errors.
    """
    onsets = np.asarray(onsets, dtype=np.int64)
    spacing = np.diff(onsets)
    # Hardware triggers are sample-exact; allow one sample plus clock drift of 1e-4 of the TR.
    tr_tol = int(np.ceil(1 + 1e-4 * np.median(spacing)))
    if onsets[-1] + int(np.round(np.median(spacing))) > raw.n_times:
        raise DataError("the last volume runs past the end of the EEG", path)
    picks = mne.pick_types(raw.info, eeg=True, ecg=True, eog=True, emg=True, misc=False,
                           exclude=())
    try:
        with threadpool_limits(1):  # memory-bound products: extra threads only contend
            for i in range(0, picks.size, CHUNK_CHANNELS):
                chunk = picks[i:i + CHUNK_CHANNELS]
                raw._data[chunk] = _aas_chunk(raw._data[chunk], onsets, window, tr_tol)
    except ValueError as exc:  # uneven TR spacing from GradientRemover's checks
        raise DataError(f"gradient correction impossible: {exc}", path) from None


def correct_gradient(raw: mne.io.BaseRaw, onsets: np.ndarray, mode: str = "auto", *,
                     window: tuple[int, int] = (4, 4),
                     path: str | os.PathLike | None = None) -> GradientReport:
    """Detect (``auto``) and remove (``auto``/``aas``) the gradient artifact in place.

    Returns
    -------
    GradientReport
        ``method`` is ``"AAS"`` when corrected, else ``"none"``; ``template_ratio`` is the
        detection statistic of :func:`detect_gradient_artifact`.
    """
    if mode == "off":
        return GradientReport("none", None, None)
    ratio = detect_gradient_artifact(raw, onsets)
    detected = ratio > GRADIENT_DETECT_RATIO
    if mode == "auto" and not detected:
        log.info("%s: no gradient artifact locked to the volumes (template ratio %.2f); "
                 "skipping AAS", path or "EEG", ratio)
        return GradientReport("none", False, ratio)
    remove_gradient(raw, onsets, window=window, path=path)
    log.info("%s: gradient artifact removed by AAS, window %s (template ratio %.1f)",
             path or "EEG", window, ratio)
    return GradientReport("AAS", detected, ratio, list(window), int(len(onsets)))


@dataclass
class BCGReport:
    """What the BCG step found and did (recorded in the sidecar)."""

    method: str
    ecg_channel: str | None = None
    n_heartbeats: int = 0
    heart_rate_bpm: float | None = None
    n_components: int | None = None
    pulse_delay_s: float | None = None

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def ecg_channel(raw: mne.io.BaseRaw) -> str | None:
    """The first channel typed ECG, or ``None``."""
    picks = mne.pick_types(raw.info, ecg=True, exclude=())
    return raw.ch_names[picks[0]] if picks.size else None


def r_peak_times(raw: mne.io.BaseRaw, ch_name: str) -> np.ndarray:
    """R-peak times in seconds from the first sample, with MNE's QRS detector."""
    events, _, _ = find_ecg_events(raw, ch_name=ch_name, verbose=False)
    return (events[:, 0] - raw.first_samp) / raw.info["sfreq"]


def obs_components(data: np.ndarray, sfreq: float, centres: np.ndarray, *,
                   max_components: int = 4, max_channels: int = 16, seed: int = 0) -> int:
    """Number of principal components of the heartbeat epochs that stand above the EEG.

    Horn's parallel analysis: on each channel, the eigenvalues of the heartbeat-locked epochs
    (centred across beats, as PCA-OBS does) are compared one by one with those of as many epochs
    at random times; components are kept while the locked one is larger. PCA-OBS with more
    components than that fits ongoing EEG instead of artifact — on simulated EEG with a 60 µV
    pulse artifact, 4 components removed 56 % of the clean alpha power, the mean template alone 6 %.

    Parameters
    ----------
    data
        ``(n_channels, n_times)`` EEG.
    sfreq
        Sampling frequency in Hz.
    centres
        Times (s) PCA-OBS will centre its epochs on.
    max_components
        Upper bound (MNE's default for ``apply_pca_obs`` is 4).
    max_channels
        Channels examined (evenly spaced), to bound the cost.
    seed
        Seed of the random epoch times (deterministic result).

    Returns
    -------
    int
        Median over the examined channels, in ``[0, max_components]``.
    """
    half = int(round(np.median(np.diff(centres)) * sfreq / 2))
    idx = np.round(centres * sfreq).astype(np.int64)
    idx = idx[(idx - half >= 0) & (idx + half + 1 <= data.shape[1])]
    rng = np.random.default_rng(seed)
    rand = rng.integers(half, data.shape[1] - half - 1, idx.size)
    offs = np.arange(-half, half + 1)
    counts = []
    for ch in np.unique(np.linspace(0, data.shape[0] - 1, min(max_channels, data.shape[0])).astype(int)):
        ev = []
        for at in (idx, rand):
            ep = data[ch][at[:, None] + offs]
            ep = ep - ep.mean(axis=1, keepdims=True)
            ep = ep - ep.mean(axis=0, keepdims=True)
            ev.append(np.linalg.svd(ep, compute_uv=False)[:max_components] ** 2)
        above = ev[0] > ev[1]
        counts.append(int(np.argmin(above)) if not above.all() else max_components)
    return int(np.median(counts))


def correct_bcg(raw: mne.io.BaseRaw, mode: str = "auto", *, n_components: int | None = None,
                path: str | os.PathLike | None = None) -> BCGReport:
    """Remove the ballistocardiogram in place with PCA-OBS on the EEG channels.

    Parameters
    ----------
    raw
        Preloaded, gradient-corrected recording.
    mode
        ``auto`` (on when an ECG channel exists, skipped with a warning otherwise), ``obs``
        (refuse without ECG) or ``off``.
    n_components
        Principal components of the heartbeat epochs fitted with the mean (OBS basis);
        ``None`` chooses them by parallel analysis (:func:`obs_components`).
    path
        The EEG file, named in errors and log lines.

    Raises
    ------
    DataError
        ``obs`` without an ECG channel, or too few heartbeats detected.
    """
    if mode == "off":
        return BCGReport("none")
    ch = ecg_channel(raw)
    if ch is None:
        if mode == "obs":
            raise DataError("--bcg-correction obs needs an ECG channel (type ECG in channels.tsv)"
                            "; none found", path)
        log.warning("%s: no ECG channel; BCG correction skipped", path or "EEG")
        return BCGReport("none")
    peaks = r_peak_times(raw, ch)
    peaks = peaks[(peaks > 0) & (peaks < raw.times[-1])]
    if peaks.size < MIN_HEARTBEATS:
        raise DataError(f"only {peaks.size} heartbeats found in ECG channel {ch!r}; PCA-OBS needs "
                        f"at least {MIN_HEARTBEATS}", path)
    picks = mne.pick_types(raw.info, eeg=True, exclude=())
    # Small SVDs and least-squares fits: extra BLAS threads only contend (measured 0.5-2 s instead
    # of 0.04 s per 250 x 225 SVD with two threads on a loaded 2-core machine).
    with threadpool_limits(1):
        data = raw.get_data(picks=picks)
        delay = pulse_delay(data, raw.info["sfreq"], peaks)
        centres = fittable_centres(peaks + delay, raw.info["sfreq"], raw.n_times)
        if n_components is None:
            n_components = obs_components(data, raw.info["sfreq"], centres)
        del data
        apply_pca_obs(raw, picks=[raw.ch_names[i] for i in picks], qrs_times=centres.astype(float),
                      n_components=n_components, copy=False, verbose=False)
    rate = 60.0 / float(np.median(np.diff(peaks)))
    log.info("%s: BCG removed by PCA-OBS (%d heartbeats on %s, %.0f bpm, pulse artifact "
             "%.0f ms after the R-peak)", path or "EEG", peaks.size, ch, rate, delay * 1e3)
    return BCGReport("PCA-OBS", ch, int(peaks.size), rate, n_components, delay)


def fittable_centres(centres: np.ndarray, sfreq: float, n_times: int) -> np.ndarray:
    """Drop beat centres closer than half the median RR (plus a sample) to either end.

    mne 1.13's PCA-OBS cuts a window of half the median RR on each side of every centre and
    checks the end with an off-by-one, so a centre exactly that far from the end crashes it; an
    edge beat cannot be fitted whole anyway.

    Parameters
    ----------
    centres
        Beat centres in seconds.
    sfreq
        Sampling frequency in Hz.
    n_times
        Samples in the recording.

    Returns
    -------
    numpy.ndarray
        The centres whose whole window lies inside the recording.
    """
    centres = np.asarray(centres, dtype=float)
    if centres.size < 2:
        return centres
    half = round(float(np.median(np.diff(np.round(centres * sfreq)))) / 2) + 1
    idx = np.round(centres * sfreq)
    return centres[(idx - half >= 0) & (idx + half < n_times)]


def pulse_delay(data: np.ndarray, sfreq: float, peaks: np.ndarray) -> float:
    """Seconds from the R-peak to the energy centroid of the pulse artifact.

    PCA-OBS fits each heartbeat in a window of ± half the median RR interval around the time it
    is given. The pulse artifact follows the R-peak by 0.2-0.4 s and lasts most of a cycle, so a
    window centred on the R-peak cuts it in two; centred on the artifact it holds it whole.
    The centroid is taken of the squared global field power of the R-locked average over one RR.

    Parameters
    ----------
    data
        ``(n_channels, n_times)`` EEG.
    sfreq
        Sampling frequency in Hz.
    peaks
        R-peak times in seconds.

    Returns
    -------
    float
        Delay in seconds, in ``[0, median RR / 2]``.
    """
    rr = float(np.median(np.diff(peaks)))
    n = int(rr * sfreq)
    starts = np.round(peaks * sfreq).astype(np.int64)
    starts = starts[starts + n <= data.shape[1]]
    avg = np.mean([data[:, s:s + n] for s in starts], axis=0)
    gfp2 = np.var(avg, axis=0)
    centroid = float(np.sum(np.arange(n) * gfp2) / max(np.sum(gfp2), np.finfo(float).tiny)) / sfreq
    return float(np.clip(centroid, 0.0, rr / 2))
