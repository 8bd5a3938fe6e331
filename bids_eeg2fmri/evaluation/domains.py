"""The metric domains of EEG→fMRI: what a BOLD target holds when it is trained and scored.

- ``fluctuations``: the model-ready series, detrended and z-scored per voxel (the default; what
  the BOLD *does*, with the anatomy removed).
- ``intensity``: BOLD intensity per volume, min-max normalised over the brain as the papers do
  (Calhas 2023, Bruno 2025, Spec2VolCAMU-Net): every volume spans [0, 1], so PSNR and SSIM use a
  data range of 1. A mean volume already scores near-perfect SSIM here, which is why the
  baselines are printed beside every model.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

DOMAINS = ("fluctuations", "intensity")
#: What a synthesized BOLD volume holds in each domain (the ``Units`` of its sidecar).
UNITS = {"fluctuations": "model-ready BOLD units (detrended, z-scored per voxel over the run)",
         "intensity": "BOLD intensity per volume, min-max normalised over the brain to [0, 1]"}


def check_domain(domain: str) -> str:
    """``domain`` when it is one of :data:`DOMAINS`; a UsageError otherwise."""
    if domain not in DOMAINS:
        raise UsageError(f"target domain must be one of {', '.join(DOMAINS)}; got {domain!r}")
    return domain


def minmax_volumes(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Min-max normalise every volume of a brain series to [0, 1].

    Parameters
    ----------
    values
        Brain voxels × volumes (``axis`` is the voxel axis: -1 for ``(t, voxels)``, 0 for
        ``(voxels, t)``).

    Returns
    -------
    ndarray
        float32, the same shape; a constant volume becomes all zeros.
    """
    v = np.asarray(values, dtype=np.float64)
    lo = v.min(axis=axis, keepdims=True)
    span = v.max(axis=axis, keepdims=True) - lo
    return np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
