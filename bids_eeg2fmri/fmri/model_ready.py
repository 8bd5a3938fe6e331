"""The model-ready series (``desc-model_bold``): masked, detrended and z-scored per voxel.

The training code reads this instead of ``desc-preproc``: every voxel has zero mean and unit variance
over the run's steady-state volumes, slow drifts (a polynomial up to ``degree``) are removed, and the
grid is coarse (``--model-res``, default 4 mm) so that models see tens of thousands of voxels, not
hundreds.

The series keeps every volume of the run. Trend, mean and variance are estimated on the volumes of
``sample_mask`` only (the non-steady-state volumes are left out, as fMRIPrep's consumers do with the
``non_steady_state_outlierNN`` flags) and applied to all, so the steady-state volumes get the values
they would get with the non-steady ones cut off, and the flagged ones stay in place, extrapolated.
"""

from __future__ import annotations

import numpy as np


def _fit_rows(n: int, sample_mask: np.ndarray | None) -> np.ndarray:
    keep = np.ones(n, dtype=bool) if sample_mask is None else np.asarray(sample_mask, dtype=bool)
    if keep.shape != (n,):
        raise ValueError(f"sample_mask has shape {keep.shape}, the series {n} volumes")
    if keep.sum() < 2:
        raise ValueError("fewer than 2 volumes to estimate the trend from")
    return keep


def detrend(series: np.ndarray, degree: int = 2, sample_mask: np.ndarray | None = None
            ) -> np.ndarray:
    """Remove a Legendre polynomial trend of ``degree`` from ``(voxels, t)`` series (mean included).

    ``sample_mask`` (``(t,)`` bool) selects the volumes the trend is fitted on; the polynomial's
    domain ``[-1, 1]`` spans the first to the last of them and is extrapolated to the others.
    """
    n = series.shape[1]
    keep = _fit_rows(n, sample_mask)
    idx = np.flatnonzero(keep)
    x = -1.0 + 2.0 * (np.arange(n) - idx[0]) / (idx[-1] - idx[0])
    basis = np.polynomial.legendre.legvander(x, degree)  # (t, degree + 1)
    data = series.astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis[keep], data[:, keep].T, rcond=None)
    return data - (basis @ coef).T


def zscore(series: np.ndarray, sample_mask: np.ndarray | None = None) -> np.ndarray:
    """Z-score each row by the mean and SD of its ``sample_mask`` volumes; rows without variance
    become 0."""
    keep = _fit_rows(series.shape[1], sample_mask)
    mean = series[:, keep].mean(axis=1, keepdims=True)
    std = series[:, keep].std(axis=1, keepdims=True)
    return np.where(std > 0, (series - mean) / np.where(std > 0, std, 1.0), 0.0)


def model_ready(series: np.ndarray, degree: int = 2, sample_mask: np.ndarray | None = None
                ) -> np.ndarray:
    """Detrend then z-score ``(voxels, t)`` series, both fitted on ``sample_mask``; float32."""
    return zscore(detrend(series, degree, sample_mask), sample_mask).astype(np.float32)
