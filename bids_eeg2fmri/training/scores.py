"""Scores of each direction's predictions (the ``score`` part of a :class:`.direction.Direction`)."""

from __future__ import annotations

import numpy as np

from .. import metrics as M
from ..config import DEFAULT_BANDS
from ..data.windows import DataSpec
from ..evaluation.volumes import volume_scores


def eeg2fmri_scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                    baselines: dict[str, np.ndarray], spec: DataSpec, *,
                    domain: str = "fluctuations",
                    roi_labels: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of BOLD predictions and of each baseline, in the BOLD's original units.

    Parameters
    ----------
    domain
        ``fluctuations`` (data range: the measured test data's) or ``intensity`` (min-max
        normalised volumes: data range 1).
    roi_labels
        Per-voxel atlas labels of voxel targets (``spec.labels`` when None), for ROI r and FC.

    Returns
    -------
    dict
        ``<name>_<metric>`` for ``name`` in ``model`` and the baselines' names; metrics are MSE,
        RMSE, mean temporal and spatial r, PSNR; for voxel targets the image metrics of
        :func:`bids_eeg2fmri.evaluation.volumes.volume_scores`; with region labels the
        region-wise r and FC similarity; with noiseless truth, ``model_r_truth_region_<k>``
        (r with the noiseless truth) and ``ceiling_region_<k>`` (r of the measurement with the
        truth). ``data_range`` is the range PSNR and SSIM used.
    """
    rng = 1.0 if domain == "intensity" else float(true.max() - true.min())
    labels = spec.labels if roi_labels is None else roi_labels
    out: dict[str, float] = {"data_range": rng}
    for name, p in {"model": pred, **baselines}.items():
        for key, value in _bold_scores(p, true, truth, spec, rng, labels).items():
            out[f"{name}_{key}"] = value
    out.update(_ceilings(true, truth, labels))
    return out


def _bold_scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                 spec: DataSpec, rng: float, labels: np.ndarray | None) -> dict[str, float]:
    s = M.summarise(pred, true)
    s["psnr"] = M.psnr(pred, true, data_range=rng)
    if spec.target == "voxels" and spec.mask is not None and min(spec.mask.shape) >= M.SSIM_WINDOW:
        s.update(volume_scores(pred, true, spec.mask, data_range=rng))
    if labels is not None:
        labels = np.asarray(labels)
        rp, ids = M.region_means(pred, labels)
        rt, _ = M.region_means(true, labels)
        for i, r in zip(ids, M.pearson_temporal(rp, rt)):
            s[f"r_region_{int(i)}"] = float(r)
        s["r_roi"] = M.nanmean(M.pearson_temporal(rp, rt))
        if len(ids) >= 3:
            s["fc_similarity"] = M.fc_similarity(rp, rt)
        if truth is not None:
            rg, _ = M.region_means(truth, labels)
            for i, r in zip(ids, M.pearson_temporal(rp, rg)):
                s[f"r_truth_region_{int(i)}"] = float(r)
    return s


def _ceilings(true: np.ndarray, truth: np.ndarray | None,
              labels: np.ndarray | None) -> dict[str, float]:
    """Noise ceiling of each region's averaged measurement (needs the noiseless truth)."""
    if truth is None or labels is None:
        return {}
    rt, ids = M.region_means(true, np.asarray(labels))
    rg, _ = M.region_means(truth, np.asarray(labels))
    return {f"ceiling_region_{int(i)}": float(c) for i, c in zip(ids, M.noise_ceiling(rg, rt))}


#: fMRI→EEG scores over the whole spectrogram (the rest, ``r_<band>_<group>``, are per cell).
POOLED_SPECTROGRAM_SCORES = ("r_overall", "r_pooled_db", "r_bins")


def spectrogram_scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                       spec: DataSpec, bands: dict[str, tuple[float, float]] | None,
                       groups: dict[str, list[str]],
                       levels: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """Metrics of normalised spectrogram predictions.

    Parameters
    ----------
    pred, true, truth
        ``(n, horizon, n_channels, n_freqs)``; ``truth`` (noiseless) may be None.
    bands
        Band name → (low, high) Hz; default :data:`~bids_eeg2fmri.config.DEFAULT_BANDS`.
    groups
        Channel-group name → channels.
    levels
        Per sample the mean and deviation ``(n, n_channels, n_freqs)`` the targets were z-scored
        with: ``z · std + mean`` restores the dB spectrogram for ``r_pooled_db``.

    Returns
    -------
    dict
        ``mse``; ``r_overall`` (Pearson r over every TR × channel × frequency of the per-bin
        z-scores); with ``levels`` ``r_pooled_db`` (the same pooled r on the dB spectrogram, the
        poster's number: the mean spectrum alone already scores high on it); ``r_bins`` (mean
        over bins of the temporal r); per cell ``<band>_<group>``:
        ``r_<cell>`` (temporal r of the cell's power), and with ``truth`` ``ceiling_<cell>`` (r of
        the noiseless with the measured power) and ``r_truth_<cell>``.
    """
    bands = bands or DEFAULT_BANDS
    n_c, n_f = pred.shape[-2:]
    p = pred.reshape(-1, n_c, n_f)
    t = true.reshape(-1, n_c, n_f)
    out = {"mse": M.mse(p, t),
           "r_overall": M.pooled_r(p, t),
           "r_bins": M.nanmean(M.pearson_temporal(p.reshape(len(p), -1), t.reshape(len(t), -1)))}
    if levels is not None:
        mean, std = (np.asarray(a, np.float64)[:, None] for a in levels)
        out["r_pooled_db"] = M.pooled_r(pred * std + mean, true * std + mean)
    freqs = np.asarray(spec.frequencies)
    pc, names = M.spectral_cells(p, freqs, spec.channels, bands, groups)
    tc, _ = M.spectral_cells(t, freqs, spec.channels, bands, groups)
    for name, r in zip(names, M.pearson_temporal(pc, tc)):
        out[f"r_{name}"] = float(r)
    if truth is not None:
        gc, _ = M.spectral_cells(truth.reshape(-1, n_c, n_f), freqs, spec.channels, bands, groups)
        for name, c, r in zip(names, M.noise_ceiling(gc, tc), M.pearson_temporal(pc, gc)):
            out[f"ceiling_{name}"] = float(c)
            out[f"r_truth_{name}"] = float(r)
    return out
