"""Evaluation metrics for synthesised BOLD (and, reused by fMRI→EEG, spectrograms).

All functions take plain arrays. The convention is time along axis 0 and targets (voxels, regions,
spectrogram bins) along axis 1: ``pred`` and ``true`` are ``(n_samples, n_targets)``. 3-D SSIM takes
single volumes. Constant series have no defined correlation; they give NaN rather than a silent 0,
and the summary helpers skip NaNs with ``nanmean``.
"""

from __future__ import annotations

import numpy as np

# SSIM constants of Wang et al. 2004, as scikit-image uses them.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_WINDOW = 3


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {true.shape}")
    return pred, true


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean squared error over every element."""
    pred, true = _pair(pred, true)
    return float(np.mean((pred - true) ** 2))


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error over every element."""
    return float(np.sqrt(mse(pred, true)))


def _flat(x: np.ndarray, axis: int) -> np.ndarray:
    """Series constant up to rounding (an average of a broadcast constant varies in its last bits)."""
    spread = np.ptp(x, axis=axis)
    return spread <= 1e-9 * np.maximum(np.abs(x).max(axis=axis), np.finfo(float).tiny)


def _pearson(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    flat = _flat(a, axis) | _flat(b, axis)
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    num = (a * b).sum(axis=axis)
    den = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    # A zero-variance series has no correlation: report NaN, never a division artefact.
    return np.where((den > 0) & ~flat, r, np.nan)


def pearson_temporal(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r along time for every target.

    Parameters
    ----------
    pred, true
        ``(n_samples, n_targets)``.

    Returns
    -------
    ndarray
        ``(n_targets,)``; NaN where either series is constant.
    """
    pred, true = _pair(pred, true)
    return _pearson(pred, true, axis=0)


def pooled_r(pred: np.ndarray, true: np.ndarray) -> float:
    """One Pearson r over every element of ``pred`` and ``true`` pooled (any shape)."""
    pred, true = _pair(pred, true)
    return float(_pearson(pred.reshape(1, -1), true.reshape(1, -1), axis=1)[0])


def pearson_spatial(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r across targets for every sample (the spatial correlation of each volume).

    Returns
    -------
    ndarray
        ``(n_samples,)``.
    """
    pred, true = _pair(pred, true)
    return _pearson(pred, true, axis=1)


def psnr(pred: np.ndarray, true: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10·log10(data_range² / MSE)``.

    Parameters
    ----------
    data_range
        The range of possible values; by default ``true.max() - true.min()`` (scikit-image's
        convention for float images when the range is given explicitly).
    """
    pred, true = _pair(pred, true)
    if data_range is None:
        data_range = float(true.max() - true.min())
    err = mse(pred, true)
    if err == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range ** 2 / err))


def ssim3d(pred: np.ndarray, true: np.ndarray, *, data_range: float | None = None,
           win_size: int = SSIM_WINDOW) -> float:
    """Mean structural similarity of two 3-D volumes.

    Local means, variances and covariance use a cubic uniform window of ``win_size`` voxels with the
    unbiased (n − 1) covariance, constants ``K1 = 0.01``, ``K2 = 0.03`` and
    ``C = (K·data_range)²``; the mean is taken over voxels at least ``(win_size − 1)/2`` from the
    border. This is ``skimage.metrics.structural_similarity(true, pred, win_size=win_size,
    data_range=data_range)`` for 3-D float images. The default window is 3 voxels because model
    grids are coarse (4 mm: a 7-voxel window spans most of a lobe).

    Parameters
    ----------
    pred, true
        Volumes of equal shape (voxels outside the brain should hold the same value in both).
    data_range
        Range of the data; by default ``true.max() - true.min()``.
    win_size
        Odd window side, no larger than the smallest volume dimension.
    """
    from .evaluation.volumes import ssim_volume

    pred, true = _pair(pred, true)
    if pred.ndim != 3:
        raise ValueError(f"ssim3d needs 3-D volumes, got shape {pred.shape}")
    if data_range is None:
        data_range = float(true.max() - true.min())
    return ssim_volume(pred, true, data_range=data_range, win_size=win_size)


def region_means(values: np.ndarray, labels: np.ndarray,
                 ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Average voxel time series within labelled regions (the one region averaging of the
    package: scores, the fMRI→EEG region inputs and the report's time courses use it).

    Parameters
    ----------
    values
        ``(n_samples, n_voxels)``.
    labels
        ``(n_voxels,)`` integer region label per voxel; 0 is background and skipped.
    ids
        The labels to average, in this order; default every label present, sorted.

    Returns
    -------
    means : ndarray
        ``(n_samples, n_regions)``.
    ids : ndarray
        The region labels, sorted, matching the columns.
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    ids = np.unique(labels[labels != 0]) if ids is None else np.asarray(ids)
    return np.stack([values[:, labels == i].mean(axis=1) for i in ids], axis=1), ids


def region_r(pred: np.ndarray, true: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Temporal Pearson r of region-averaged prediction and target, per region label."""
    p, ids = region_means(pred, labels)
    t, _ = region_means(true, labels)
    return {int(i): float(r) for i, r in zip(ids, pearson_temporal(p, t))}


def fc_matrix(x: np.ndarray) -> np.ndarray:
    """Functional connectivity: the Pearson correlation matrix of the columns of ``x``.

    :func:`numpy.corrcoef`; a constant column has NaN correlations.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.atleast_2d(np.corrcoef(x, rowvar=False))
    flat = _flat(x, 0)
    c[flat, :] = np.nan
    c[:, flat] = np.nan
    return c


def fc_similarity(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson r between the upper triangles of predicted and true FC matrices.

    Parameters
    ----------
    pred, true
        ``(n_samples, n_regions)`` region time series (at least three regions).
    """
    pred, true = _pair(pred, true)
    iu = np.triu_indices(pred.shape[1], k=1)
    a, b = fc_matrix(pred)[iu], fc_matrix(true)[iu]
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:  # constant predictions have no connectivity to compare
        return float("nan")
    return float(_pearson(a[keep][None], b[keep][None], axis=1)[0])


def noise_ceiling(truth: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Noise ceiling per target when the noiseless signal is known (simulated data).

    The correlation between the noiseless signal and its noisy measurement,
    ``r(truth, measured) = sqrt(var(signal) / var(measured))`` for independent noise, is the highest
    temporal r any prediction can reach against the measurement on average.

    Parameters
    ----------
    truth, measured
        ``(n_samples, n_targets)``.

    Returns
    -------
    ndarray
        ``(n_targets,)``; NaN for targets whose noiseless signal is constant (un-driven).
    """
    return pearson_temporal(truth, measured)


def nanmean(values: np.ndarray) -> float:
    """Mean ignoring NaN; NaN (without a warning) when nothing is left, e.g. constant predictions."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def summarise(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The scalar metrics of one prediction set: MSE, RMSE, mean temporal and spatial r, PSNR."""
    return {
        "mse": mse(pred, true),
        "rmse": rmse(pred, true),
        "r_temporal": nanmean(pearson_temporal(pred, true)),
        "r_spatial": nanmean(pearson_spatial(pred, true)),
        "psnr": psnr(pred, true),
    }


def spectral_cells(spec: np.ndarray, frequencies: np.ndarray, channels: list[str],
                   bands: dict[str, tuple[float, float]],
                   groups: dict[str, list[str]]) -> tuple[np.ndarray, list[str]]:
    """Band power of channel groups from a spectrogram: the cells fMRI→EEG results are scored on.

    Parameters
    ----------
    spec
        ``(n_samples, n_channels, n_freqs)`` (log) power, e.g. one predicted or measured TR per row.
    frequencies
        ``(n_freqs,)`` Hz.
    channels
        Channel names of axis 1.
    bands
        Band name → ``[low, high)`` Hz; bands without a bin are skipped.
    groups
        Channel-group name → channel names (names absent from ``channels`` are ignored).

    Returns
    -------
    cells : ndarray
        ``(n_samples, n_cells)``: the mean over the group's channels and the band's bins.
    names : list of str
        ``<band>_<group>`` per column, bands outer.
    """
    spec = np.asarray(spec, dtype=np.float64)
    freqs = np.asarray(frequencies, dtype=float)
    cols, names = [], []
    for band, (lo, hi) in bands.items():
        fsel = (freqs >= lo) & (freqs < hi)
        if not fsel.any():
            continue
        for group, members in groups.items():
            csel = np.isin(np.asarray(channels), list(members))
            if not csel.any():
                continue
            cols.append(spec[:, csel][:, :, fsel].mean(axis=(1, 2)))
            names.append(f"{band}_{group}")
    if not cols:
        raise ValueError("no band has a frequency bin and no channel group has a channel")
    return np.stack(cols, axis=1), names
