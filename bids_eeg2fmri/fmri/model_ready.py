"""The model-ready series (``desc-model_bold``): masked, detrended and z-scored per voxel.

The training code reads this instead of ``desc-preproc``: every voxel has zero mean and unit variance
over the run, slow drifts (a polynomial up to ``degree``) are removed, and the grid is coarse
(``--model-res``, default 4 mm) so that models see tens of thousands of voxels, not hundreds.
"""

from __future__ import annotations

import numpy as np


def detrend(series: np.ndarray, degree: int = 2) -> np.ndarray:
    """Remove a Legendre polynomial trend of ``degree`` from ``(voxels, t)`` series (mean included)."""
    n = series.shape[1]
    x = np.linspace(-1.0, 1.0, n)
    basis = np.polynomial.legendre.legvander(x, degree)  # (t, degree + 1)
    q, _ = np.linalg.qr(basis)
    data = series.astype(np.float64)
    return data - (data @ q) @ q.T


def zscore(series: np.ndarray) -> np.ndarray:
    """Z-score each row; rows without variance become 0."""
    mean = series.mean(axis=1, keepdims=True)
    std = series.std(axis=1, keepdims=True)
    return np.where(std > 0, (series - mean) / np.where(std > 0, std, 1.0), 0.0)


def model_ready(series: np.ndarray, degree: int = 2) -> np.ndarray:
    """Detrend then z-score ``(voxels, t)`` series; float32."""
    return zscore(detrend(series, degree)).astype(np.float32)
