"""Brain-aware image metrics of predicted BOLD volumes: SSIM three ways, PSNR with its range.

Outside the brain prediction and target hold the same fill value, so every SSIM window there
scores exactly 1 and every squared error 0: a whole-volume mean rewards empty space. The headline
is therefore :func:`ssim_brain`, the SSIM map averaged over brain voxels only. The papers'
variants — whole-volume 3-D SSIM (:func:`ssim_volume`) and the mean of 2-D SSIM over axial slices
(:func:`ssim_slices`) — are kept, labelled, so numbers can be set beside theirs.

The SSIM map is scikit-image's (``structural_similarity(..., full=True)`` with a uniform window,
``K1 = 0.01``, ``K2 = 0.03`` and the unbiased covariance); the tests check each function against it.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from ..metrics import SSIM_K1, SSIM_K2, SSIM_WINDOW, _pair

#: The window of the slice-wise 2-D SSIM: scikit-image's default (what the papers' code used).
SLICE_WINDOW = 7


def fit_window(win_size: int, shape: tuple[int, ...]) -> int:
    """The largest odd window no larger than ``win_size`` and the smallest dimension (≥ 3)."""
    win = min(win_size, min(shape))
    win = win if win % 2 else win - 1
    if win < 3:
        raise ValueError(f"a volume of shape {shape} is too small for an SSIM window")
    return win


def ssim_map(pred: np.ndarray, true: np.ndarray, *, data_range: float,
             win_size: int = SSIM_WINDOW) -> np.ndarray:
    """The local SSIM at every voxel (or pixel) of an n-D image.

    Parameters
    ----------
    pred, true
        Images of equal shape.
    data_range
        The range the constants ``C = (K·data_range)²`` scale with.
    win_size
        Odd side of the uniform window.

    Returns
    -------
    ndarray
        The map ``skimage.metrics.structural_similarity(true, pred, full=True)`` returns.
    """
    pred, true = _pair(pred, true)
    if win_size % 2 == 0 or win_size > min(pred.shape):
        raise ValueError(f"win_size must be odd and <= the smallest dimension {min(pred.shape)}")
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    npix = win_size ** pred.ndim
    cov_norm = npix / (npix - 1)
    mu_x = uniform_filter(true, win_size)
    mu_y = uniform_filter(pred, win_size)
    vx = cov_norm * (uniform_filter(true * true, win_size) - mu_x * mu_x)
    vy = cov_norm * (uniform_filter(pred * pred, win_size) - mu_y * mu_y)
    vxy = cov_norm * (uniform_filter(true * pred, win_size) - mu_x * mu_y)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * vxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1)
                                                       * (vx + vy + c2))


def _crop(s: np.ndarray, win_size: int) -> np.ndarray:
    pad = (win_size - 1) // 2
    return s[tuple(slice(pad, -pad or None) for _ in s.shape)]


def ssim_brain(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, *, data_range: float,
               win_size: int = SSIM_WINDOW) -> float:
    """SSIM over brain voxels only: the mean of the SSIM map inside ``mask`` (the headline).

    Parameters
    ----------
    pred, true
        3-D volumes, equal outside the brain (the fill value does not matter: it never enters
        the mean, only the windows that straddle the brain's edge).
    mask
        Boolean brain mask of the same shape.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != np.shape(true) or not mask.any():
        raise ValueError("the brain mask must match the volume's shape and hold a voxel")
    return float(ssim_map(pred, true, data_range=data_range, win_size=win_size)[mask].mean())


def ssim_volume(pred: np.ndarray, true: np.ndarray, *, data_range: float,
                win_size: int = SSIM_WINDOW) -> float:
    """The papers' whole-volume 3-D SSIM: the map's mean over every voxel at least
    ``(win_size − 1)/2`` from the border, background included (scikit-image's mean)."""
    return float(_crop(ssim_map(pred, true, data_range=data_range, win_size=win_size),
                       win_size).mean())


def ssim_slices(pred: np.ndarray, true: np.ndarray, *, data_range: float,
                win_size: int = SLICE_WINDOW, axis: int = 2) -> float:
    """The papers' slice-wise SSIM: 2-D SSIM of every slice along ``axis`` (axial by default),
    averaged; the window shrinks to the in-plane size when the slices are smaller."""
    pred, true = _pair(pred, true)
    p, t = np.moveaxis(pred, axis, 0), np.moveaxis(true, axis, 0)
    win = fit_window(win_size, p.shape[1:])
    return float(np.mean([_crop(ssim_map(a, b, data_range=data_range, win_size=win), win).mean()
                          for a, b in zip(p, t)]))


def psnr(pred: np.ndarray, true: np.ndarray, *, data_range: float,
         mask: np.ndarray | None = None) -> float:
    """``10·log10(data_range² / MSE)`` in dB, the MSE over ``mask`` voxels when given.

    ``skimage.metrics.peak_signal_noise_ratio(true, pred, data_range=data_range)`` without a mask.
    """
    pred, true = _pair(pred, true)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        pred, true = pred[..., mask], true[..., mask]
    err = float(np.mean((pred - true) ** 2))
    return float("inf") if err == 0 else float(10.0 * np.log10(data_range ** 2 / err))


def volume_scores(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, *, data_range: float,
                  fill: float = 0.0) -> dict[str, float]:
    """Every image metric of a set of predicted volumes, averaged over volumes.

    Parameters
    ----------
    pred, true
        ``(n_volumes, n_brain_voxels)`` in ``mask`` order.
    mask
        3-D brain mask.
    data_range
        Range of the domain (1 for min-max normalised intensity; the measured range of the test
        data for fluctuations).
    fill
        Value outside the brain in both prediction and target.

    Returns
    -------
    dict
        ``ssim_brain`` (3-voxel window), ``ssim_volume3d`` (3-voxel window, background
        included), ``ssim_slices2d`` (axial slices, 7-pixel window or the in-plane size),
        ``psnr_brain`` (MSE over the brain) and ``psnr_volume`` (MSE over the whole volume), each
        per volume, then averaged.
    """
    mask = np.asarray(mask, dtype=bool)
    win = fit_window(SSIM_WINDOW, mask.shape)
    vol_p = np.full(mask.shape, fill, dtype=np.float64)
    vol_t = np.full(mask.shape, fill, dtype=np.float64)
    acc: dict[str, list[float]] = {k: [] for k in ("ssim_brain", "ssim_volume3d", "ssim_slices2d",
                                                   "psnr_brain", "psnr_volume")}
    for p, t in zip(np.asarray(pred), np.asarray(true)):
        vol_p[mask], vol_t[mask] = p, t
        s = ssim_map(vol_p, vol_t, data_range=data_range, win_size=win)
        acc["ssim_brain"].append(float(s[mask].mean()))
        acc["ssim_volume3d"].append(float(_crop(s, win).mean()))
        acc["ssim_slices2d"].append(ssim_slices(vol_p, vol_t, data_range=data_range))
        acc["psnr_brain"].append(psnr(p, t, data_range=data_range))
        acc["psnr_volume"].append(psnr(vol_p, vol_t, data_range=data_range))
    return {k: float(np.mean(v)) for k, v in acc.items()}
