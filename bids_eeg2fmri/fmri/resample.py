"""One-shot resampling of the original series into template space.

For every output voxel ``p`` (template grid) the boldref point ``q = p + d(p)`` comes from the
registration's displacement field, computed once for the whole run. Volume ``i`` is then sampled at
``M_i q`` (its head-motion matrix) with cubic B-spline interpolation. Head motion, the affine and the
nonlinear warp are therefore applied in a single interpolation of the original (slice-time
corrected) data, volume by volume — never as a 4-D ``antsApplyTransforms`` call, whose memory grows
with the whole series at once.

Only voxels inside an output mask (the template brain) are computed; the series is kept as a
``(voxels, time)`` matrix, which is about a fifth of the full 4-D grid at 2 mm.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from scipy import ndimage

from .registration import template_to_boldref


def grid_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """RAS world coordinates ``(n, 3)`` of the ``True`` voxels of a mask on a grid."""
    ijk = np.argwhere(mask)
    return (np.asarray(affine, float) @ np.column_stack([ijk, np.ones(len(ijk))]).T)[:3].T


def resample_series(data: np.ndarray, bold_affine: np.ndarray, hmc: np.ndarray | None,
                    field: np.ndarray | None, field_affine: np.ndarray | None,
                    out_mask: np.ndarray, out_affine: np.ndarray, *, order: int = 3,
                    dtype: type = np.float32, return_coverage: bool = False, n_procs: int = 1,
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Resample every volume once through ``hmc ∘ (affine + warp)`` into template voxels.

    Parameters
    ----------
    data
        Original-grid series ``(x, y, z, t)`` (after slice-timing correction).
    bold_affine
        NIfTI affine of the original grid (the boldref shares it).
    hmc
        ``(t, 4, 4)`` RAS matrices mapping boldref points to volume points; identity when ``None``.
    field, field_affine
        Displacement field ``(x, y, z, 3)`` (LPS vectors) from template points to boldref points, and
        its grid's affine. ``None`` maps template points to themselves (data already in that space).
    out_mask
        Boolean mask on the output grid: the voxels to compute.
    out_affine
        Affine of the output grid.
    order
        Spline order (3 = cubic, 1 = trilinear).
    dtype
        Output dtype.
    return_coverage
        Also return, per output voxel, whether every volume sampled it inside the acquired grid
        (between the first and last voxel centres, so no value is extrapolated).
    n_procs
        Worker processes, each resampling a contiguous chunk of volumes. SciPy's spline
        interpolation holds the GIL (measured: two threads no faster than one), so only
        processes run volumes in parallel.

    Returns
    -------
    numpy.ndarray
        ``(n_mask_voxels, t)``; samples outside the original field of view are 0.
    numpy.ndarray
        With ``return_coverage``: boolean ``(n_mask_voxels,)``.
    """
    n_t = data.shape[-1]
    pts = grid_points(out_mask, out_affine)
    src = pts if field is None else template_to_boldref(pts, field, field_affine)
    src_h = np.column_stack([src, np.ones(len(src))]).T  # (4, n)
    inv_bold = np.linalg.inv(np.asarray(bold_affine, float))
    mats = np.stack([inv_bold if hmc is None else inv_bold @ hmc[i] for i in range(n_t)])
    n_procs = max(1, min(int(n_procs), n_t))
    if n_procs == 1:
        out, covered = _resample_chunk(data, mats, src_h, order, dtype)
    else:
        bounds = np.linspace(0, n_t, n_procs + 1).astype(int)
        out = np.empty((len(pts), n_t), dtype=dtype)
        covered = np.ones(len(pts), dtype=bool)
        with ProcessPoolExecutor(n_procs, mp_context=get_context("spawn")) as pool:
            futures = {(a, b): pool.submit(_resample_chunk, np.ascontiguousarray(data[..., a:b]),
                                           mats[a:b], src_h, order, dtype)
                       for a, b in zip(bounds[:-1], bounds[1:]) if b > a}
            for (a, b), fut in futures.items():
                out[:, a:b], cov = fut.result()
                covered &= cov
    return (out, covered) if return_coverage else out


def _resample_chunk(data: np.ndarray, mats: np.ndarray, src_h: np.ndarray, order: int,
                    dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Sample volume ``i`` of ``data`` at voxel coordinates ``mats[i] @ src_h``; values, coverage."""
    shape = np.array(data.shape[:3])
    out = np.empty((src_h.shape[1], data.shape[-1]), dtype=dtype)
    covered = np.ones(src_h.shape[1], dtype=bool)
    for i in range(data.shape[-1]):
        vox = (mats[i] @ src_h)[:3]
        # Points beyond half a voxel outside the grid have no data: zero them instead of mirroring.
        inside = np.all((vox > -0.5) & (vox < shape[:, None] - 0.5), axis=0)
        # A voxel that leaves the slab in some volumes (through-plane motion at its edge) would
        # carry zeros or extrapolated values there: it is reported as not fully covered.
        covered &= np.all((vox >= 0) & (vox <= shape[:, None] - 1), axis=0)
        coeffs = ndimage.spline_filter(data[..., i].astype(np.float64, copy=False), order=order,
                                       mode="mirror") if order > 1 else data[..., i]
        vals = ndimage.map_coordinates(coeffs, vox, order=order, prefilter=False, mode="mirror")
        out[:, i] = np.where(inside, vals, 0.0)
    return out, covered


def unmask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Put ``(n_mask_voxels, ...)`` values back on the grid of ``mask`` (zeros elsewhere)."""
    out = np.zeros(mask.shape + values.shape[1:], dtype=values.dtype)
    out[mask] = values
    return out
