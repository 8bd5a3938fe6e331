"""Scores of each direction's predictions (the ``score`` part of a :class:`.direction.Direction`)."""

from __future__ import annotations

import numpy as np

from .. import metrics as M
from ..config import DEFAULT_BANDS
from ..data.windows import DataSpec


def eeg2fmri_scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                    baselines: dict[str, np.ndarray], spec: DataSpec) -> dict[str, float]:
    """Metrics of BOLD predictions and of each baseline, in the BOLD's original units.

    Returns
    -------
    dict
        ``<name>_<metric>`` for ``name`` in ``model`` and the baselines' names; metrics are MSE,
        RMSE, mean temporal and spatial r, PSNR, SSIM (voxel targets; 3-voxel window, data range
        of the measured data), and with region labels the region-wise r and FC similarity; with
        noiseless truth, ``model_r_truth_region_<k>`` (r with the noiseless truth) and
        ``ceiling_region_<k>`` (r of the measurement with the truth).
    """
    out: dict[str, float] = {}
    for name, p in {"model": pred, **baselines}.items():
        for key, value in _bold_scores(p, true, truth, spec).items():
            out[f"{name}_{key}"] = value
    out.update(_ceilings(true, truth, spec))
    return out


def _bold_scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                 spec: DataSpec) -> dict[str, float]:
    s = M.summarise(pred, true)
    if spec.target == "voxels" and spec.mask is not None and min(spec.mask.shape) >= M.SSIM_WINDOW:
        rng = float(true.max() - true.min())
        vol_p = np.zeros(spec.mask.shape)
        vol_t = np.zeros(spec.mask.shape)
        vals = []
        for p, t in zip(pred, true):
            vol_p[spec.mask], vol_t[spec.mask] = p, t
            vals.append(M.ssim3d(vol_p, vol_t, data_range=rng))
        s["ssim"] = float(np.mean(vals))
    if spec.labels is not None:
        labels = np.asarray(spec.labels)
        rp, ids = M.region_means(pred, labels)
        rt, _ = M.region_means(true, labels)
        for i, r in zip(ids, M.pearson_temporal(rp, rt)):
            s[f"r_region_{int(i)}"] = float(r)
        if len(ids) >= 3:
            s["fc_similarity"] = M.fc_similarity(rp, rt)
        if truth is not None:
            rg, _ = M.region_means(truth, labels)
            for i, r in zip(ids, M.pearson_temporal(rp, rg)):
                s[f"r_truth_region_{int(i)}"] = float(r)
    return s


def _ceilings(true: np.ndarray, truth: np.ndarray | None, spec: DataSpec) -> dict[str, float]:
    """Noise ceiling of each region's averaged measurement (needs the noiseless truth)."""
    if truth is None or spec.labels is None:
        return {}
    rt, ids = M.region_means(true, np.asarray(spec.labels))
    rg, _ = M.region_means(truth, np.asarray(spec.labels))
    return {f"ceiling_region_{int(i)}": float(c) for i, c in zip(ids, M.noise_ceiling(rg, rt))}


def spectrogram_scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                       spec: DataSpec, bands: dict[str, tuple[float, float]] | None,
                       groups: dict[str, list[str]]) -> dict[str, float]:
    """Metrics of normalised spectrogram predictions.

    Parameters
    ----------
    pred, true, truth
        ``(n, horizon, n_channels, n_freqs)``; ``truth`` (noiseless) may be None.
    bands
        Band name → (low, high) Hz; default :data:`~bids_eeg2fmri.config.DEFAULT_BANDS`.
    groups
        Channel-group name → channels.

    Returns
    -------
    dict
        ``mse``; ``r_overall`` (Pearson r over every TR × channel × frequency, the seed's headline
        number); ``r_bins`` (mean over bins of the temporal r); per cell ``<band>_<group>``:
        ``r_<cell>`` (temporal r of the cell's power), and with ``truth`` ``ceiling_<cell>`` (r of
        the noiseless with the measured power) and ``r_truth_<cell>``.
    """
    bands = bands or DEFAULT_BANDS
    n_c, n_f = pred.shape[-2:]
    p = pred.reshape(-1, n_c, n_f)
    t = true.reshape(-1, n_c, n_f)
    out = {"mse": M.mse(p, t),
           "r_overall": float(M.pearson_temporal(p.reshape(-1, 1), t.reshape(-1, 1))[0]),
           "r_bins": M.nanmean(M.pearson_temporal(p.reshape(len(p), -1), t.reshape(len(t), -1)))}
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
