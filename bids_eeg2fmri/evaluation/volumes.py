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
from ..metrics import psnr as _psnr

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
             win_size: int = SSIM_WINDOW, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """The local SSIM at every voxel (or pixel) of an n-D image.

    Parameters
    ----------
    pred, true
        Images of equal shape.
    data_range
        The range the constants ``C = (K·data_range)²`` scale with.
    win_size
        Odd side of the uniform window.
    axes
        The image axes the window spans (default all); the others index separate images (a
        batch of volumes, or the slices of a volume).

    Returns
    -------
    ndarray
        The map ``skimage.metrics.structural_similarity(true, pred, full=True)`` returns for
        each image.
    """
    pred, true = _pair(pred, true)
    axes = tuple(range(pred.ndim)) if axes is None else tuple(a % pred.ndim for a in axes)
    if win_size % 2 == 0 or win_size > min(pred.shape[a] for a in axes):
        raise ValueError("win_size must be odd and <= the smallest image dimension "
                         f"{min(pred.shape[a] for a in axes)}")
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    size = tuple(win_size if a in axes else 1 for a in range(pred.ndim))
    npix = win_size ** len(axes)
    cov_norm = npix / (npix - 1)
    mu_x = uniform_filter(true, size)
    mu_y = uniform_filter(pred, size)
    vx = cov_norm * (uniform_filter(true * true, size) - mu_x * mu_x)
    vy = cov_norm * (uniform_filter(pred * pred, size) - mu_y * mu_y)
    vxy = cov_norm * (uniform_filter(true * pred, size) - mu_x * mu_y)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * vxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1)
                                                       * (vx + vy + c2))


def _crop(s: np.ndarray, win_size: int, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """The map without its ``(win_size − 1)/2`` border along ``axes`` (default all)."""
    pad = (win_size - 1) // 2
    axes = tuple(range(s.ndim)) if axes is None else tuple(a % s.ndim for a in axes)
    return s[tuple(slice(pad, -pad or None) if a in axes else slice(None)
                   for a in range(s.ndim))]


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
    plane = tuple(a for a in range(pred.ndim) if a != axis % pred.ndim)
    win = fit_window(win_size, tuple(pred.shape[a] for a in plane))
    s = ssim_map(pred, true, data_range=data_range, win_size=win, axes=plane)
    return float(_crop(s, win, plane).mean(axis=plane).mean())


def psnr(pred: np.ndarray, true: np.ndarray, *, data_range: float,
         mask: np.ndarray | None = None) -> float:
    """``10·log10(data_range² / MSE)`` in dB, the MSE over ``mask`` voxels when given.

    ``skimage.metrics.peak_signal_noise_ratio(true, pred, data_range=data_range)`` without a mask.
    """
    pred, true = _pair(pred, true)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        pred, true = pred[..., mask], true[..., mask]
    return _psnr(pred, true, data_range)


def volume_scores(pred: np.ndarray, true: np.ndarray, mask: np.ndarray, *, data_range: float,
                  fill: float = 0.0, chunk: int = 32) -> dict[str, float]:
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
    chunk
        Volumes scored at once (bounds the memory of the maps).

    Returns
    -------
    dict
        ``ssim_brain`` (3-voxel window), ``ssim_volume3d`` (3-voxel window, background
        included), ``ssim_slices2d`` (axial slices, 7-pixel window or the in-plane size),
        ``psnr_brain`` (MSE over the brain) and ``psnr_volume`` (MSE over the whole volume), each
        per volume, then averaged.
    """
    mask = np.asarray(mask, dtype=bool)
    pred, true = _pair(pred, true)
    win = fit_window(SSIM_WINDOW, mask.shape)
    win2 = fit_window(SLICE_WINDOW, mask.shape[:2])
    vol, plane = (1, 2, 3), (1, 2)
    acc: dict[str, list[np.ndarray]] = {k: [] for k in ("ssim_brain", "ssim_volume3d",
                                                        "ssim_slices2d", "psnr_brain",
                                                        "psnr_volume")}
    for start in range(0, len(pred), chunk):
        p, t = pred[start:start + chunk], true[start:start + chunk]
        vol_p = np.full((len(p),) + mask.shape, fill)
        vol_t = np.full((len(p),) + mask.shape, fill)
        vol_p[:, mask], vol_t[:, mask] = p, t
        s = ssim_map(vol_p, vol_t, data_range=data_range, win_size=win, axes=vol)
        acc["ssim_brain"].append(s[:, mask].mean(axis=1))
        acc["ssim_volume3d"].append(_crop(s, win, vol).mean(axis=vol))
        s2 = ssim_map(vol_p, vol_t, data_range=data_range, win_size=win2, axes=plane)
        acc["ssim_slices2d"].append(_crop(s2, win2, plane).mean(axis=(1, 2, 3)))
        with np.errstate(divide="ignore"):
            for key, err in (("psnr_brain", ((p - t) ** 2).mean(axis=1)),
                             ("psnr_volume", ((vol_p - vol_t) ** 2).mean(axis=vol))):
                acc[key].append(10.0 * np.log10(data_range ** 2 / err))
    return {k: float(np.mean(np.concatenate(v))) for k, v in acc.items()}
