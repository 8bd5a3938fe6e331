"""Participant EEG figures: artifact correction before/after and the spectrogram."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...bids.derivatives import sidecar_path
from .common import as_frame, COLOURS, PathLike, read_json, save_svg


def _read_eeg_window(path: PathLike, start: float, stop: float, picks: Sequence[str] | None
                     ) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """Samples of a few channels in ``[start, stop)`` s, reading only that part of the file."""
    import mne

    with mne.utils.use_log_level("ERROR"):
        raw = mne.io.read_raw(os.fspath(path), preload=False, verbose=False)
    sf = raw.info["sfreq"]
    names = [c for c in (picks or raw.ch_names) if c in raw.ch_names]
    a = max(0, int(round(start * sf)))
    b = min(raw.n_times, int(round(stop * sf)))
    data = raw.get_data(picks=names, start=a, stop=b) * 1e6  # V → µV
    return data, (np.arange(a, b) / sf), names, float(sf)


def plot_eeg_correction(raw_eeg: PathLike, preproc_eeg: PathLike, out_path: PathLike, *,
                        channels: Sequence[str] | None = None, n_channels: int = 4,
                        start: float | None = None, duration: float = 5.0,
                        volume_onsets: Sequence[float] | None = None) -> Path:
    """A few seconds of EEG before and after gradient/BCG correction, and their spectra.

    Only the shown window is read from either file. The raw panel is the recording as stored
    (original rate, unfiltered, so MR gradients dominate when present); the corrected panel is the
    ``desc-preproc_eeg.fif`` (gradient AAS, resampling, notch + band-pass, BCG PCA-OBS, average
    reference). The spectra (Welch over the window, mean of the shown channels) show what was
    removed: gradient harmonics at the slice and volume frequencies, line noise, out-of-band power.

    Parameters
    ----------
    raw_eeg
        The raw BIDS EEG file (any format ``mne.io.read_raw`` opens).
    preproc_eeg
        The run's ``desc-preproc_eeg.fif``.
    out_path
        Output ``.svg``.
    channels
        EEG channels to show; default ``n_channels`` EEG channels spread over the montage.
    n_channels
        How many, when ``channels`` is not given.
    start
        Window start (s from the first sample); default the onset of the middle volume.
    duration
        Window length (s).
    volume_onsets
        Volume onsets (s from the first sample), drawn as ticks; default the ``bold_volume``
        annotations of the preprocessed file.

    Returns
    -------
    pathlib.Path
    """
    import mne
    from scipy import signal as sps

    with mne.utils.use_log_level("ERROR"):
        clean = mne.io.read_raw(os.fspath(preproc_eeg), preload=False, verbose=False)
    eeg_idx = mne.pick_types(clean.info, eeg=True, exclude="bads")
    eeg_names = [clean.ch_names[i] for i in eeg_idx]
    ecg_names = [clean.ch_names[i] for i in mne.pick_types(clean.info, ecg=True, exclude=())]
    if channels is None:
        pick = np.unique(np.linspace(0, len(eeg_names) - 1, min(n_channels, len(eeg_names)))
                         .round().astype(int))
        channels = [eeg_names[i] for i in pick]
    if volume_onsets is None:
        from ...eeg.pipeline import volume_onsets_from_raw
        volume_onsets = volume_onsets_from_raw(clean)
    onsets = np.asarray(volume_onsets, dtype=float)
    if start is None:
        start = float(onsets[onsets.size // 2]) if onsets.size else \
            max(0.0, clean.times[-1] / 2 - duration / 2)
    stop = start + duration
    shown = list(channels) + ecg_names[:1]
    before, t_b, names_b, sf_b = _read_eeg_window(raw_eeg, start, stop, shown)
    after, t_a, names_a, sf_a = _read_eeg_window(preproc_eeg, start, stop, shown)

    fig = plt.figure(figsize=(11, 7))
    grid = fig.add_gridspec(2, 2, width_ratios=[3, 1.2], wspace=0.25, hspace=0.35)
    specs = []
    for row, (data, t, names, label) in enumerate(
            ((before, t_b, names_b, "raw (as recorded)"),
             (after, t_a, names_a, "corrected (desc-preproc)"))):
        ax = fig.add_subplot(grid[row, 0])
        eeg_rows = [i for i, n in enumerate(names) if n not in ecg_names]
        sub = data[eeg_rows] - data[eeg_rows].mean(axis=1, keepdims=True) if eeg_rows else data
        # One shared spacing per panel: traces keep their relative amplitudes.
        spacing = float(np.percentile(np.abs(sub), 99) * 2.2) if sub.size else 1.0
        spacing = spacing or 1.0
        for k, i in enumerate(eeg_rows):
            ax.plot(t, sub[k] - k * spacing, color="k", lw=0.5, rasterized=True)
        labels = [names[i] for i in eeg_rows]
        ticks = [-k * spacing for k in range(len(eeg_rows))]
        ecg_rows = [i for i, n in enumerate(names) if n in ecg_names]
        for i in ecg_rows:
            e = data[i] - data[i].mean()
            scale = float(np.percentile(np.abs(e), 99)) or 1.0
            pos = -len(eeg_rows) * spacing
            ax.plot(t, e / scale * spacing * 0.45 + pos, color="C3", lw=0.5, rasterized=True)
            labels.append(f"{names[i]} (scaled)")
            ticks.append(pos)
        ax.set_yticks(ticks, labels, fontsize=8)
        for o in onsets[(onsets >= start) & (onsets < stop)]:
            ax.axvline(o, color="C0", lw=0.6, alpha=0.6)
        ax.set_xlim(start, stop)
        ax.set_title(f"{label}: {sf_b if row == 0 else sf_a:g} Hz, trace spacing "
                     f"{spacing:.3g} µV; blue lines = volume onsets", fontsize=9, loc="left")
        if row == 1:
            ax.set_xlabel("time (s from first sample)")
        if eeg_rows:
            nper = int(min(sub.shape[1], (sf_b if row == 0 else sf_a)))
            f, p = sps.welch(sub, fs=sf_b if row == 0 else sf_a, nperseg=max(nper, 8))
            specs.append((label, f, p.mean(axis=0)))
    ax = fig.add_subplot(grid[:, 1])
    for k, (label, f, p) in enumerate(specs):
        keep = f > 0
        ax.loglog(f[keep], p[keep], color=("C3", "C0")[k], lw=1, label=label)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (µV²/Hz), mean of shown EEG channels")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("spectrum of the window", fontsize=9, loc="left")
    return save_svg(fig, out_path)


def plot_spectrogram(spectrogram: PathLike, out_path: PathLike, *,
                     bandpower: PathLike | pd.DataFrame | None = None,
                     bandpower_onsets: Sequence[float] | None = None) -> Path:
    """Channel-averaged per-TR spectrogram and band-power time courses with volume onsets.

    Parameters
    ----------
    spectrogram
        ``desc-stft_spectrogram.h5`` (or ``desc-synth_spectrogram.h5``): datasets
        ``spectrogram`` (volume, channel, frequency, frame; attrs ``scale``, ``units``),
        ``frequencies``, ``frame_times`` (s from the segment start), ``volume_onsets``.
    out_path
        Output ``.svg``.
    bandpower
        ``desc-bandpower_timeseries.tsv`` (path or DataFrame; columns ``<channel>_<band>``, µV²),
        averaged over channels per band; omitted when ``None``.
    bandpower_onsets
        Onset (s) of each band-power row; default ``VolumeOnsets`` of the TSV's JSON sidecar, else
        the spectrogram's volume onsets.

    Returns
    -------
    pathlib.Path
    """
    import h5py

    with h5py.File(os.fspath(spectrogram), "r") as h5:
        d = h5["spectrogram"]
        scale = d.attrs.get("scale", "log-power")
        units = d.attrs.get("units", "")
        if isinstance(scale, bytes):
            scale = scale.decode()
        if isinstance(units, bytes):
            units = units.decode()
        # Mean over channels volume by volume: the file can hold ~1 GB for long runs.
        spec = np.stack([d[v].mean(axis=0) for v in range(d.shape[0])]) if d.shape[0] else \
            np.empty((0,) + d.shape[2:])
        freqs = h5["frequencies"][()]
        ftimes = h5["frame_times"][()]
        onsets = h5["volume_onsets"][()]
        n_ch = d.shape[1]
    meta = read_json(sidecar_path(spectrogram))
    tr = float(meta.get("RepetitionTime") or (np.median(np.diff(onsets)) if onsets.size > 1 else 1))
    context = int(meta.get("STFT", {}).get("ContextTRs", 0) or 0)
    # Absolute frame time = onset - context·TR + frame time; keep the frames inside the volume's
    # own TR so the columns tile the time axis (the context frames belong to earlier volumes).
    rel = ftimes - context * tr
    own = (rel >= 0) & (rel < tr)
    if not own.any():
        own = np.ones_like(rel, dtype=bool)
    times = (onsets[:, None] + rel[None, own]).ravel()
    cols = np.moveaxis(spec[..., own], 1, 2).reshape(-1, freqs.size).T  # freq × (vol·frame)
    order = np.argsort(times)
    times, cols = times[order], cols[:, order]

    n_panels = 2 if bandpower is not None else 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(10, 3.2 * n_panels), sharex=True, squeeze=False)
    ax = axes[0, 0]
    if times.size:
        edges_t = _edges(times)
        edges_f = _edges(freqs)
        lo, hi = np.nanpercentile(cols, [2, 98]) if np.isfinite(cols).any() else (0, 1)
        mesh = ax.pcolormesh(edges_t, edges_f, cols, shading="flat", cmap="magma", vmin=lo,
                             vmax=hi, rasterized=True)
        fig.colorbar(mesh, ax=ax, pad=0.01, label=units or scale)
        ax.plot(onsets, np.full(onsets.size, freqs.max()), "|", color="c", ms=6,
                label="volume onsets", clip_on=False)
        ax.set_xlim(edges_t[0], edges_t[-1])
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(f"STFT {scale}, mean of {n_ch} channels; {onsets.size} volumes (cyan ticks: "
                 "volume onsets)", fontsize=9, loc="left")
    if bandpower is not None:
        df = as_frame(bandpower)
        if bandpower_onsets is None and not isinstance(bandpower, pd.DataFrame):
            bandpower_onsets = read_json(sidecar_path(bandpower)).get("VolumeOnsets")
        x = np.asarray(bandpower_onsets if bandpower_onsets is not None else onsets[:len(df)],
                       dtype=float)
        ax = axes[1, 0]
        bands = sorted({c.rsplit("_", 1)[1] for c in df.columns if "_" in c},
                       key=lambda b: [c.rsplit("_", 1)[1] for c in df.columns].index(b))
        for k, band in enumerate(bands):
            cols_b = [c for c in df.columns if c.rsplit("_", 1)[-1] == band]
            y = df[cols_b].to_numpy(float).mean(axis=1)
            ax.semilogy(x[:y.size] + tr / 2, y[:x.size], ".-", color=COLOURS[k % 10], lw=1,
                        ms=3, label=f"{band} ({len(cols_b)} ch)")
        for o in x:
            ax.axvline(o, color="0.85", lw=0.4, zorder=0)
        ax.set_ylabel("band power (µV², log)")
        ax.legend(fontsize=8, ncol=len(bands), frameon=False, loc="upper left")
        ax.set_title("band power per volume (mean over channels), plotted at mid-TR; grey lines: "
                     "volume onsets", fontsize=9, loc="left")
        # Match the spectrogram's width: its colour bar takes space the lower panel lacks.
        fig.colorbar(plt.cm.ScalarMappable(), ax=ax, pad=0.01).remove()
    axes[-1, 0].set_xlabel("time (s from first EEG sample)")
    return save_svg(fig, out_path)


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
