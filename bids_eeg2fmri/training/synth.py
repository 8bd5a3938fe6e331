"""Applying fMRI→EEG models to whole runs: the synthesised spectrogram of a run from its BOLD,
and the voxel-component inputs (``--fmri-input pca``) fitted on training volumes only."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..bids.derivatives import atomic_path, build_path, write_sidecar
from ..data.normalise import EEGNormaliser
from ..data.regions import VoxelPCA
from ..data.windows import RunArrays, SequenceSpec
from .direction import window_volumes
from .model import FittedModel
from .trainer import resolve_device


def fit_input_pca(runs: Sequence[RunArrays], samples: pd.DataFrame, rows: np.ndarray,
                  window: SequenceSpec, n_components: int) -> VoxelPCA:
    """Voxel PCA fitted on exactly the volumes the samples ``rows`` read (their BOLD windows),
    so a held-out subject or test block never shapes the components."""
    from ..data.regions import fit_voxel_pca

    table = samples.iloc[np.asarray(rows, dtype=int)]
    return fit_voxel_pca(runs, window_volumes(table, window), n_components)


# --------------------------------------------------------------------------- reconstruction
def reconstruct(fitted: FittedModel, run: RunArrays, *, device: str = "auto") -> np.ndarray:
    """Spectrogram of every retained TR of ``run`` from its BOLD alone, in the EEG's units (dB).

    The window slides one TR at a time; each position predicts ``horizon`` TRs, and each TR's
    prediction is the average of all windows that predict it (``horizon`` of them inside the run).
    Near the run's edges and next to dummy scans the window reaches volumes that do not exist or are
    not retained; those are filled with the subject's mean (0 after normalisation), so every
    retained TR is covered.

    Returns
    -------
    ndarray
        ``(n_volumes, n_channels, n_freqs)``; NaN for volumes that are not retained.
    """
    fitted.check([run])
    bins = (len(fitted.data_spec.channels), len(fitted.data_spec.frequencies))
    w, h, off = fitted.window.window, fitted.window.horizon, fitted.window.offset
    n = run.n_volumes
    input_norm = copy.deepcopy(fitted.input_norm)
    input_norm.ensure(run)
    z = input_norm.transform(np.asarray(run.bold[:], dtype=np.float32), run.subject)
    z[~run.retained] = 0.0
    padded = np.zeros((n + 2 * w, z.shape[1]), dtype=np.float32)
    padded[w:w + n] = z
    anchors = np.arange(-(h - 1), n)
    keep = np.zeros_like(anchors, dtype=bool)
    for j in range(h):
        idx = anchors + j
        ok = (idx >= 0) & (idx < n)
        keep[ok] |= run.retained[idx[ok]]
    anchors = anchors[keep]
    starts = anchors - off + w
    x = np.stack([padded[s:s + w] for s in starts])
    dev = resolve_device(device)
    net = fitted.model.to(dev).eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[i:i + 256]).to(dev)).float().cpu().numpy()
                               for i in range(0, len(x), 256)])
    pred = pred.reshape(len(anchors), h, *bins)
    total = np.zeros((n, *bins))
    count = np.zeros(n)
    for j in range(h):
        idx = anchors + j
        ok = (idx >= 0) & (idx < n)
        np.add.at(total, idx[ok], pred[ok, j])
        np.add.at(count, idx[ok], 1)
    out = np.full((n, *bins), np.nan)
    cover = run.retained & (count > 0)
    out[cover] = total[cover] / count[cover, None, None]
    mean, std = _eeg_stats(fitted.target_norm, run.subject)
    return out * std + mean


def _eeg_stats(norm: EEGNormaliser, subject: str) -> tuple[np.ndarray, np.ndarray]:
    if subject in norm.stats:
        return norm.stats[subject]
    # A subject without EEG (fMRI only): the average training subject's spectral baseline.
    means = np.stack([m for m, _ in norm.stats.values()])
    stds = np.stack([s for _, s in norm.stats.values()])
    return means.mean(axis=0), stds.mean(axis=0)


def write_synth_spectrogram(out_dir: str | os.PathLike, source: Any, fitted: FittedModel,
                            run: RunArrays, *, n_frames: int | None = None,
                            frame_times: np.ndarray | None = None, scale: str = "log-power",
                            device: str = "auto", spectrogram: np.ndarray | None = None) -> Path:
    """Reconstruct ``run``'s spectrogram and write ``<src>_desc-synth_spectrogram.h5`` (+ JSON).

    The file has the measured ``desc-stft_spectrogram.h5``'s datasets and axes (written by
    :func:`bids_eeg2fmri.eeg.pipeline.write_spectrogram_h5`): ``spectrogram`` (volume, channel,
    frequency, frame), ``frequencies``, ``frame_times``, ``channels``, ``volume_indices``,
    ``volume_onsets``. The model predicts power per TR, so the ``n_frames`` frames of a TR (default
    the model's ``DataSpec.n_frames``) hold the same values; rows are the retained volumes.

    Parameters
    ----------
    source
        The BOLD run's path or entities (names the output).
    spectrogram
        The reconstruction to write (e.g. from segment models,
        :func:`~bids_eeg2fmri.training.segments.reconstruct_segments`); default
        :func:`reconstruct`'s sliding windows.
    """
    from ..eeg.pipeline import SpectralResult, write_spectrogram_h5

    spec = reconstruct(fitted, run, device=device) if spectrogram is None else spectrogram
    vols = np.flatnonzero(np.isfinite(spec).all(axis=(1, 2)))
    n_frames = int(n_frames or fitted.data_spec.n_frames)
    tr = fitted.data_spec.tr
    if frame_times is None:
        frame_times = (np.arange(n_frames) + 0.5) * tr / n_frames
    data = np.repeat(spec[vols][..., None], n_frames, axis=-1).astype(np.float32)
    res = SpectralResult(
        spectrogram=data, frequencies=np.asarray(fitted.data_spec.frequencies),
        frame_times=np.asarray(frame_times, dtype=float), channels=list(fitted.data_spec.channels),
        spec_volumes=vols, spec_onsets=vols * tr, bandpower_columns=[],
        bandpower=np.empty((0, 0)), bandpower_volumes=vols, bandpower_onsets=vols * tr,
        metadata={"RepetitionTime": tr})
    path = build_path(out_dir, source, suffix="spectrogram", extension=".h5", datatype="eeg",
                      desc="synth")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        meta = write_spectrogram_h5(tmp, res, scale)
    meta.update({
        "Description": f"EEG spectrogram synthesised from BOLD by the fMRI→EEG model "
                      f"{fitted.name} (window {fitted.window.window} TRs, {fitted.window.horizon} "
                      "centred TRs per window, " + (
                          "overlapping predictions averaged)" if spectrogram is None else
                          "one model fine-tuned per temporal segment of the run)"),
        "VolumeOnsets": (vols * tr).tolist(),
        "Datasets": {**meta["Datasets"], "volume_onsets": "s from the first BOLD volume onset",
                     "spectrogram": f"float32 {scale}; frames of one TR are equal (per-TR model)"},
        "Model": {"Name": fitted.name, "Window": fitted.window.window,
                  "Horizon": fitted.window.horizon, "Hyperparameters": fitted.hparams,
                  "TrainedOn": fitted.provenance.get("subjects"),
                  "Units": ("subject's own EEG statistics" if run.subject in fitted.target_norm.stats
                            else "mean EEG statistics of the training subjects")}})
    write_sidecar(path, meta)
    return path
