"""The metric domains of EEG→fMRI: what a BOLD target holds when it is trained and scored.

- ``fluctuations``: the model-ready series, detrended and z-scored per voxel (the default; what
  the BOLD *does*, with the anatomy removed).
- ``intensity``: BOLD intensity per volume, min-max normalised over the brain as Spec2VolCAMU-Net's
  code does (and Bruno 2025 describes): every volume spans [0, 1], so PSNR and SSIM use a data
  range of 1. Calhas 2023's code z-scores each subject's whole series instead; a per-volume
  min-max keeps SSIM comparable across subjects (docs/evaluation.md, *Sources*). A mean volume already scores near-perfect SSIM here, which is why the
  baselines are printed beside every model.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

DOMAINS = ("fluctuations", "intensity")
#: Grids of the intensity domain: the model grid (``--model-res``; 2 mm is the papers' MNI 2 mm
#: in-mask grid) or a native-like resize of the template's field of view (Bruno et al.'s 64×64×30).
INTENSITY_GRIDS = ("model", "resize")
RESIZE_SHAPE = (64, 64, 30)
#: What a synthesized BOLD volume holds in each domain (the ``Units`` of its sidecar).
UNITS = {"fluctuations": "model-ready BOLD units (detrended, z-scored per voxel over the run)",
         "intensity": "BOLD intensity per volume, min-max normalised over the brain to [0, 1]"}


def check_domain(domain: str) -> str:
    """``domain`` when it is one of :data:`DOMAINS`; a UsageError otherwise."""
    if domain not in DOMAINS:
        raise UsageError(f"target domain must be one of {', '.join(DOMAINS)}; got {domain!r}")
    return domain


def resize_grid(shape: tuple[int, int, int] = RESIZE_SHAPE) -> tuple[tuple[int, int, int],
                                                                      np.ndarray]:
    """Shape and affine of the template's field of view resized to ``shape`` voxels (anisotropic
    voxels, like an EPI acquisition's 64×64×30)."""
    from ..resources.templates import template_grid

    ref_shape, ref_affine = template_grid(1)
    extent = np.array(ref_shape, dtype=float) * np.abs(np.diag(ref_affine)[:3])
    affine = np.diag(list(extent / np.array(shape, dtype=float)) + [1.0])
    affine[:3, 3] = ref_affine[:3, 3]
    return tuple(int(n) for n in shape), affine


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
