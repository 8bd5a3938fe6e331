"""Noiseless expected EEG spectrogram of a simulated run, for the fMRI→EEG noise ceiling.

The measured spectrogram (:func:`bids_eeg2fmri.eeg.pipeline.write_spectrogram_h5`) of a simulated
run is, per channel and frequency bin, background power plus the power of the band's rhythms,
which scales with the true squared envelope over the STFT frame. :func:`expected_spectrogram`
fits that line (``power ≈ a + b·env²``) per channel and bin over the run and evaluates it without
noise: the correlation of the measurement with it is the noise ceiling given the latent sources.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy.signal import get_window

from ..eeg.spectral import LOG_FLOOR_UV2
from ..errors import DataError

#: Points of the frame's taper the envelope is evaluated at (slow sources, bursts of 1-2 s).
N_POINTS = 16


def _frame_env2(truth: dict[str, Any], centres: np.ndarray, offsets: np.ndarray,
                weights: np.ndarray) -> np.ndarray:
    """Taper²-weighted mean of env² over each frame: ``(B, C, *centres.shape)``."""
    env = np.asarray(truth["channel_envelopes"], dtype=np.float64)
    t_src = np.asarray(truth["source_times"], dtype=np.float64)
    pts = centres[..., None] + offsets  # (..., N_POINTS), truth clock
    out = np.empty(env.shape[:2] + centres.shape)
    for b in range(env.shape[0]):
        for c in range(env.shape[1]):
            out[b, c] = (np.interp(pts, t_src, env[b, c]) ** 2) @ weights
    return out


def expected_spectrogram(spectrogram_h5: str | os.PathLike, truth: dict[str, Any]) -> np.ndarray:
    """Noiseless expected spectrogram of one run, same shape, rows and scale as the file's.

    Parameters
    ----------
    spectrogram_h5
        The run's ``*_spectrogram.h5``; its JSON sidecar (same name, ``.json``) must sit beside it.
    truth
        :func:`bids_eeg2fmri.simulate.load_ground_truth` of the same run (EEG keys needed).

    Returns
    -------
    numpy.ndarray
        ``(volumes, channels, frequencies, frames)`` float32 in the file's scale (dB re 1 µV² or
        µV). Bins inside a simulated band at channels the truth knows hold ``a + b·env²`` fitted
        by least squares in linear power over the run; all other bins (and degenerate fits)
        hold their time mean, i.e. a constant whose correlation downstream is NaN. In log-power
        the value is the dB of the expected power, which lies ~2.5 dB above the expected dB of an
        exponentially distributed bin power: a constant offset that correlations ignore.

    Raises
    ------
    DataError
        When the file or its sidecar cannot be read, or the truth does not fit the file.
    """
    path = Path(spectrogram_h5)
    try:
        with h5py.File(path, "r") as h5:
            spec = np.asarray(h5["spectrogram"], dtype=np.float64)
            scale = h5["spectrogram"].attrs["scale"]
            freqs = np.asarray(h5["frequencies"], dtype=float)
            frame_times = np.asarray(h5["frame_times"], dtype=float)
            channels = [c.decode() if isinstance(c, bytes) else str(c) for c in h5["channels"][()]]
            vol_idx = np.asarray(h5["volume_indices"], dtype=np.int64)
            onsets = np.asarray(h5["volume_onsets"], dtype=float)
        meta = json.loads(path.with_suffix(".json").read_text())
        tr, stft = float(meta["RepetitionTime"]), meta["STFT"]
        sfreq, context = float(meta["SamplingFrequency"]), int(stft["ContextTRs"])
        nperseg, taper = int(stft["WindowSamples"]), stft["Taper"]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read spectrogram: {type(exc).__name__}: {exc}", path) from None
    scale = scale.decode() if isinstance(scale, bytes) else str(scale)
    if scale not in ("log-power", "magnitude") or spec.ndim != 4:
        raise DataError(f"unexpected spectrogram scale {scale!r} or shape {spec.shape}", path)
    try:
        env_shape = np.shape(truth["channel_envelopes"])
        bands = {k: tuple(map(float, v)) for k, v in truth["bands"].items()}
        truth_ch = list(truth["eeg_channels"])
        n_src = len(truth["source_times"])
        origin = float(truth["first_volume_sample"]) / float(truth["eeg_sfreq"])
        truth_onsets = np.asarray(truth["volume_onset_samples"]) / float(truth["eeg_sfreq"])
    except KeyError as exc:
        raise DataError(f"ground truth lacks EEG key {exc}", path) from None
    if env_shape != (len(bands), len(truth_ch), n_src):
        raise DataError(f"ground truth envelopes {env_shape} do not match its {len(bands)} bands, "
                        f"{len(truth_ch)} channels and {n_src} source times", path)
    # volume_onsets are seconds from the first EEG sample at the original rate (resampling keeps
    # that origin), so they must agree with the simulator's triggers to within a sample or two.
    if vol_idx.size and (vol_idx.max() >= truth_onsets.size
                         or np.abs(onsets - truth_onsets[vol_idx]).max() > 2.0 / sfreq):
        raise DataError("volume onsets of the spectrogram do not match the simulated triggers",
                        path)
    # Segment start exactly as spectral.volume_segments cuts it (onset and context rounded to
    # samples of the preprocessed EEG); frame_times are frame centres from that start. The truth
    # clock's zero is the first volume trigger.
    seg_start = (np.round(onsets * sfreq) - round(context * tr * sfreq)) / sfreq
    centres = seg_start[:, None] + frame_times[None, :] - origin  # (V, T)
    # Sample n of a frame lies (n - nperseg/2)/sfreq from its centre; |X|² weights it by taper².
    idx = np.round(np.linspace(0, nperseg - 1, N_POINTS)).astype(int)
    weights = get_window(taper, nperseg)[idx] ** 2
    weights /= weights.sum()
    offsets = (idx - nperseg / 2) / sfreq
    src_t = np.asarray(truth["source_times"], dtype=float)
    if centres.size and (centres.min() + offsets[0] < src_t[0]
                         or centres.max() + offsets[-1] > src_t[-1]):
        raise DataError("spectrogram frames reach outside the simulated source times", path)
    env2 = _frame_env2(truth, centres, offsets, weights)  # (B, C_truth, V, T)

    power = 10.0 ** (spec / 10.0) if scale == "log-power" else spec ** 2
    out = np.broadcast_to(spec.mean(axis=(0, 3), keepdims=True), spec.shape).copy()
    pairs = [(i, truth_ch.index(c)) for i, c in enumerate(channels) if c in truth_ch]
    if not pairs:
        return out.astype(np.float32)
    ch_file, ch_truth = (np.array(p) for p in zip(*pairs))
    for b, (lo, hi) in enumerate(bands.values()):
        fidx = np.flatnonzero((freqs >= lo) & (freqs < hi))  # half-open, as spectral_cells
        if fidx.size == 0:
            continue
        x = np.moveaxis(env2[b, ch_truth], 0, 1)[:, :, None, :]  # (V, C, 1, T)
        sel = np.ix_(np.arange(spec.shape[0]), ch_file, fidx, np.arange(spec.shape[3]))
        y = power[sel]
        xc = x - x.mean(axis=(0, 3), keepdims=True)
        ym = y.mean(axis=(0, 3), keepdims=True)
        sxx = (xc ** 2).sum(axis=(0, 3), keepdims=True)
        sxy = (xc * (y - ym)).sum(axis=(0, 3), keepdims=True)
        # Degenerate: a regressor that does not vary (relative to its size) over the run.
        ok = np.isfinite(sxy) & (sxx > 1e-12 * (x ** 2).sum(axis=(0, 3), keepdims=True))
        slope = np.where(ok, sxy / np.where(ok, sxx, 1.0), 0.0)
        # Floor at the bin's smallest measured power: a steep negative fit must not produce a
        # power of ~0 (−inf dB) that would dominate any correlation.
        fit = np.maximum(ym + slope * xc, np.maximum(y.min(axis=(0, 3), keepdims=True),
                                                     LOG_FLOOR_UV2))
        fitted = 10.0 * np.log10(fit) if scale == "log-power" else np.sqrt(fit)
        # Degenerate fits keep the constant time mean in the file's scale, like un-driven bins.
        out[sel] = np.where(ok, fitted, out[sel])
    return out.astype(np.float32)
