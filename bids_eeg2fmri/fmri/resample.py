"""One-shot resampling of the original series into template space.

For every output voxel ``p`` (template grid) the boldref point ``q = p + d(p)`` comes from the
registration's displacement field, computed once for the whole run. Volume ``i`` is then sampled at
``M_i q`` (its head-motion matrix) with cubic B-spline interpolation. Head motion, the affine and the
nonlinear warp are therefore applied in a single interpolation of the original (slice-time
corrected) data — never as a 4-D ``antsApplyTransforms`` call, whose memory grows with the whole
series at once.

On the CPU each volume is interpolated by SciPy (``spline_filter`` then ``map_coordinates``) in
``n_procs`` processes, over chunks of ``CHUNK_VOLUMES`` volumes that are yielded in order as they
finish (:func:`iter_scipy_chunks`). Given the path of an uncompressed NIfTI, each worker
memory-maps it and reads only its chunk, so no copy of the run is pickled to the workers, and at
most two chunks per worker are in flight: a worker's memory is bounded by one chunk. Only points
inside the acquired grid are interpolated. Measured on 64×64×30 volumes into the 2 mm template
brain (235 k points; ``benchmarks/resample.py``), SciPy's compiled loop needs 0.072 CPU seconds
per volume, the batched torch formulation on one CPU thread 0.158 (eight 3-D ``grid_sample``
fetches per point; a 64-gather formulation measured 3× slower than SciPy too). On CUDA the volumes
are resampled in chunks in torch: SciPy computes the B-spline coefficients of a chunk
(``spline_filter1d``, the same mirror boundary), and the cubic B-spline is evaluated as eight
trilinear ``grid_sample`` fetches per point (Sigg & Hadwiger, GPU Gems 2, ch. 20: on each axis the
four cubic weights are two linear interpolations at shifted positions), which matches SciPy to
float32 precision. Both paths compute each output value independently of the others, so results
do not depend on the number of processes, threads or chunks; memory is bounded by one chunk
(``CHUNK_VOLUMES`` volumes on the CPU, about ``POINT_BUDGET`` points × volumes with torch).

Only voxels inside an output mask (the template brain) are computed; the series is kept as a
``(voxels, time)`` matrix, which is about a fifth of the full 4-D grid at 2 mm.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .registration import template_to_boldref

if TYPE_CHECKING:
    import torch

# Volumes per SciPy task: a worker holds one chunk's input and its (points × chunk) output.
CHUNK_VOLUMES = 8
# Points × volumes per chunk: about 12 float32 arrays of this size are alive at once (≈ 0.4 GB).
POINT_BUDGET = 8_000_000


def grid_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """RAS world coordinates ``(n, 3)`` of the ``True`` voxels of a mask on a grid."""
    ijk = np.argwhere(mask)
    return (np.asarray(affine, float) @ np.column_stack([ijk, np.ones(len(ijk))]).T)[:3].T


def resample_series(data: np.ndarray | str | os.PathLike, bold_affine: np.ndarray,
                    hmc: np.ndarray | None,
                    field: np.ndarray | None, field_affine: np.ndarray | None,
                    out_mask: np.ndarray, out_affine: np.ndarray, *, order: int = 3,
                    dtype: type = np.float32, return_coverage: bool = False, n_procs: int = 1,
                    engine: str = "auto", device: str | torch.device | None = None,
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Resample every volume once through ``hmc ∘ (affine + warp)`` into template voxels.

    Parameters
    ----------
    data
        Original-grid series ``(x, y, z, t)`` (after slice-timing correction), or the path of an
        uncompressed NIfTI holding it, which the SciPy workers memory-map chunk by chunk.
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
        Spline order: 3 (cubic B-spline) or 1 (trilinear).
    dtype
        Output dtype.
    return_coverage
        Also return, per output voxel, whether every volume sampled it inside the acquired grid
        (between the first and last voxel centres, so no value is extrapolated).
    n_procs
        CPU: worker processes, each resampling a contiguous chunk of volumes (SciPy's spline
        interpolation holds the GIL, so threads would not run volumes in parallel).
    engine
        ``"scipy"``, ``"torch"``, or ``"auto"``: torch on CUDA when present, SciPy otherwise.
    device
        torch device of ``engine="torch"`` (CUDA when present by default).

    Returns
    -------
    numpy.ndarray
        ``(n_mask_voxels, t)``; samples outside the original field of view are 0.
    numpy.ndarray
        With ``return_coverage``: boolean ``(n_mask_voxels,)``.
    """
    if order not in (1, 3):
        raise ValueError(f"spline order must be 1 or 3, got {order}")
    if engine not in ("auto", "scipy", "torch"):
        raise ValueError(f"unknown resampling engine {engine!r}")
    on_disk = not isinstance(data, np.ndarray)
    n_t = _series_length(data)
    mats, src = sampling_geometry(bold_affine, hmc, n_t, field, field_affine, out_mask, out_affine)
    # torch loads only here: SciPy's worker processes import this module, and torch would add
    # ≈ 0.3 GB to each of them.
    import torch

    from .batched_rigid import default_device

    dev = torch.device(device) if device is not None else default_device()
    if engine == "scipy" or (engine == "auto" and dev.type == "cpu"):
        out, covered = _resample_scipy(data, mats, src, order, dtype, n_procs)
    else:
        array = _load_series(data) if on_disk else data
        out, covered = _resample_torch(array, mats, src, order, dtype, dev)
    return (out, covered) if return_coverage else out


def _series_length(data: np.ndarray | str | os.PathLike) -> int:
    """Number of volumes of an in-memory series or of a 4-D NIfTI file (header only)."""
    if isinstance(data, np.ndarray):
        return int(data.shape[-1])
    import nibabel as nib

    return int(nib.load(os.fspath(data)).shape[-1])


def _load_series(path: str | os.PathLike) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(os.fspath(path)).dataobj, dtype=np.float32)


def sampling_geometry(bold_affine: np.ndarray, hmc: np.ndarray | None, n_volumes: int,
                      field: np.ndarray | None, field_affine: np.ndarray | None,
                      out_mask: np.ndarray, out_affine: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-volume matrices ``(t, 4, 4)`` from boldref RAS points to voxel indices, and the points.

    The points ``(n, 3)`` are the boldref RAS positions of the ``True`` voxels of ``out_mask``
    (through the displacement field when one is given); see :func:`resample_series`.
    """
    pts = grid_points(out_mask, out_affine)
    src = pts if field is None else template_to_boldref(pts, field, field_affine)
    inv_bold = np.linalg.inv(np.asarray(bold_affine, float))
    mats = np.stack([inv_bold if hmc is None else inv_bold @ hmc[i] for i in range(n_volumes)])
    return mats, src


def _resample_scipy(data: np.ndarray | str | os.PathLike, mats: np.ndarray, src: np.ndarray,
                    order: int, dtype: type, n_procs: int) -> tuple[np.ndarray, np.ndarray]:
    """SciPy interpolation of all volumes, chunk by chunk (see :func:`iter_scipy_chunks`)."""
    out = np.empty((len(src), len(mats)), dtype=dtype)
    covered = np.ones(len(src), dtype=bool)
    for a, b, vals, cov in iter_scipy_chunks(data, mats, src, order=order, dtype=dtype,
                                             n_procs=n_procs):
        out[:, a:b] = vals
        covered &= cov
    return out, covered


def iter_scipy_chunks(data: np.ndarray | str | os.PathLike, mats: np.ndarray, src: np.ndarray, *,
                      order: int = 3, dtype: type = np.float32, n_procs: int = 1,
                      chunk: int = CHUNK_VOLUMES
                      ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Resample chunks of ``chunk`` volumes with SciPy in ``n_procs`` processes; yield them in order.

    Parameters
    ----------
    data
        The ``(x, y, z, t)`` series, or the path of an uncompressed NIfTI holding it: each worker
        then memory-maps the file and reads only its chunk's volumes, so no copy of the run is
        pickled to the workers.
    mats
        ``(t, 4, 4)`` matrices from the points' RAS coordinates to each volume's voxel indices.
    src
        ``(n, 3)`` RAS points to sample.
    order, dtype
        Spline order (1 or 3) and output dtype.
    n_procs
        Worker processes (SciPy's interpolation holds the GIL, so threads would not help).
    chunk
        Volumes per task: worker memory is bounded by one chunk's input and output.

    Yields
    ------
    start, stop, values, coverage
        Volume range, ``(n, stop - start)`` values (0 outside the acquired grid) and per-point
        coverage of those volumes (see :func:`_inside_and_covered`).
    """
    n_t = len(mats)
    src_h = np.column_stack([src, np.ones(len(src))]).T  # (4, n)
    bounds = [(a, min(n_t, a + chunk)) for a in range(0, n_t, max(1, int(chunk)))]

    def source(a: int, b: int) -> np.ndarray | tuple[str, int, int]:
        # Built when the chunk is submitted, so at most the chunks in flight exist as copies.
        if isinstance(data, np.ndarray):
            return np.ascontiguousarray(data[..., a:b]) if n_procs > 1 else data[..., a:b]
        return os.fspath(data), a, b

    n_procs = max(1, min(int(n_procs), len(bounds)))
    if n_procs == 1:
        for a, b in bounds:
            vals, cov = _scipy_chunk(_read_chunk(source(a, b)), mats[a:b], src_h, order, dtype)
            yield a, b, vals, cov
        return
    # The points go to each worker once (initializer), not with every task.
    with ProcessPoolExecutor(n_procs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(src_h,)) as pool:
        # At most 2 tasks per worker in flight: results wait in memory only that long.
        pending: deque = deque()
        todo = iter(bounds)

        def submit(a: int, b: int) -> None:
            pending.append(((a, b), pool.submit(_scipy_task, source(a, b), mats[a:b], order,
                                                dtype)))

        for a, b in todo:
            submit(a, b)
            if len(pending) >= 2 * n_procs:
                break
        while pending:
            (a, b), fut = pending.popleft()
            vals, cov = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                submit(*nxt)
            yield a, b, vals, cov


# Set in each worker process by the pool's initializer (never in the main process).
_WORKER_POINTS: dict[str, np.ndarray] = {}


def _init_worker(src_h: np.ndarray) -> None:
    """Keep the homogeneous sample points ``(4, n)`` for this worker's tasks."""
    _WORKER_POINTS["src_h"] = src_h


def _read_chunk(source: np.ndarray | tuple[str, int, int]) -> np.ndarray:
    """A chunk's volumes: the array itself, or read from a memory-mapped ``(path, start, stop)``."""
    if isinstance(source, np.ndarray):
        return source
    import nibabel as nib

    path, a, b = source
    return np.asarray(nib.load(path, mmap=True).dataobj[..., a:b], dtype=np.float32)


def _scipy_task(source: np.ndarray | tuple[str, int, int], mats: np.ndarray, order: int,
                dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """One chunk in a worker process: read its volumes, resample them at the worker's points."""
    return _scipy_chunk(_read_chunk(source), mats, _WORKER_POINTS["src_h"], order, dtype)


def _scipy_chunk(data: np.ndarray, mats: np.ndarray, src_h: np.ndarray, order: int,
                 dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Sample volume ``i`` of ``data`` at voxel coordinates ``mats[i] @ src_h``; values, coverage.

    Only the points inside the grid are interpolated (the rest are 0): with an acquired slab
    thinner than the brain that skips a good part of the template points.
    """
    shape = np.array(data.shape[:3])
    out = np.zeros((src_h.shape[1], data.shape[-1]), dtype=dtype)
    covered = np.ones(src_h.shape[1], dtype=bool)
    for i in range(data.shape[-1]):
        vox = (mats[i] @ src_h)[:3]
        inside, cov = _inside_and_covered(vox, shape)
        covered &= cov
        coeffs = ndimage.spline_filter(data[..., i].astype(np.float64, copy=False), order=order,
                                       mode="mirror") if order > 1 else data[..., i]
        out[inside, i] = ndimage.map_coordinates(coeffs, vox[:, inside], order=order,
                                                 prefilter=False, mode="mirror")
    return out, covered


def _inside_and_covered(vox, shape):
    """Per point: inside the grid by less than half a voxel; and between the edge voxel centres.

    Points beyond half a voxel outside the grid have no data: they are zeroed instead of mirrored.
    A voxel that leaves the slab in some volumes (through-plane motion at its edge) would carry
    zeros or extrapolated values there: it is reported as not fully covered. Works on numpy
    ``(3, n)`` arrays and on torch ``(3, B, n)`` stacks alike (reduced over the volumes).
    """
    hi = shape.reshape((3,) + (1,) * (vox.ndim - 1))
    inside = ((vox > -0.5) & (vox < hi - 0.5)).all(0)
    covered = ((vox >= 0) & (vox <= hi - 1)).all(0)
    while covered.ndim > 1:
        covered = covered.all(0)
    return inside, covered


def _resample_torch(data: np.ndarray, mats: np.ndarray, src: np.ndarray, order: int, dtype: type,
                    dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Batched torch interpolation of chunks of volumes on ``dev``."""
    import torch

    n_t = data.shape[-1]
    out = np.empty((len(src), n_t), dtype=dtype)
    covered = np.ones(len(src), dtype=bool)
    chunk = max(1, POINT_BUDGET // max(len(src), 1))
    with torch.no_grad():
        src_t = torch.from_numpy(np.ascontiguousarray(src.T)).to(dev, torch.float64)
        for a in range(0, n_t, chunk):
            b = min(n_t, a + chunk)
            vals, cov = _torch_chunk(data[..., a:b], mats[a:b], src_t, order, dev)
            out[:, a:b] = vals.T
            covered &= cov
    return out, covered


def _coefficients(data: np.ndarray, order: int) -> np.ndarray:
    """B-spline coefficients ``(t, x, y, z)`` float32 of a chunk ``(x, y, z, t)`` (mirror boundary)."""
    coeffs = np.asarray(data, dtype=np.float64)
    if order > 1:
        for axis in range(3):
            coeffs = ndimage.spline_filter1d(coeffs, order=order, axis=axis, mode="mirror")
    return np.ascontiguousarray(np.moveaxis(coeffs, -1, 0), dtype=np.float32)


def _cubic_taps(x: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                          tuple[torch.Tensor, torch.Tensor]]:
    """Weights ``(g0, g1)`` and positions ``(h0, h1)`` of the two linear fetches of a cubic B-spline."""
    import torch

    i = torch.floor(x)
    t = x - i
    t2, t3 = t * t, t * t * t
    w0 = (1 - t) ** 3 / 6
    w1 = (3 * t3 - 6 * t2 + 4) / 6
    w3 = t3 / 6
    g0 = w0 + w1
    g1 = 1 - g0
    return (g0, g1), (i - 1 + w1 / g0, i + 1 + w3 / g1)


def _torch_chunk(data: np.ndarray, mats: np.ndarray, src_t: torch.Tensor, order: int,
                 dev: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Sample volume ``i`` of ``data`` at voxel coordinates ``mats[i] @ src``; values ``(B, N)``, coverage."""
    import torch
    import torch.nn.functional as F

    dims = data.shape[:3]
    coeffs = torch.from_numpy(_coefficients(data, order)).to(dev)[:, None]  # (B, 1, X, Y, Z)
    m = torch.from_numpy(mats).to(dev, torch.float64)
    # Elementwise rather than a matrix product: BLAS kernels may sum in another order with
    # another thread count, and the result must not depend on it.
    vox = [(m[:, k, 0:1] * src_t[0] + m[:, k, 1:2] * src_t[1] + m[:, k, 2:3] * src_t[2]
            + m[:, k, 3:4]).to(torch.float32) for k in range(3)]  # 3 × (B, N)
    inside, covered = _inside_and_covered(torch.stack(vox),
                                          torch.tensor(dims, dtype=torch.float32, device=dev))

    def fetch(pos: list[torch.Tensor]) -> torch.Tensor:
        # grid_sample's (x, y, z) are the last, middle and first tensor axes, normalised to [-1, 1];
        # reflection about the edge voxel centres is SciPy's "mirror".
        grid = torch.stack([2 * pos[k] / max(dims[k] - 1, 1) - 1 for k in (2, 1, 0)], dim=-1)
        return F.grid_sample(coeffs, grid[:, None, None], mode="bilinear",
                             padding_mode="reflection", align_corners=True)[:, 0, 0, 0]

    if order == 1:
        vals = fetch(vox)
    else:
        taps = [_cubic_taps(v) for v in vox]
        vals = torch.zeros_like(vox[0])
        for a in range(2):
            for b in range(2):
                for c in range(2):
                    weight = taps[0][0][a] * taps[1][0][b] * taps[2][0][c]
                    vals += weight * fetch([taps[0][1][a], taps[1][1][b], taps[2][1][c]])
    vals = torch.where(inside, vals, torch.zeros_like(vals))
    return vals.cpu().numpy(), covered.cpu().numpy()


def unmask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Put ``(n_mask_voxels, ...)`` values back on the grid of ``mask`` (zeros elsewhere)."""
    out = np.zeros(mask.shape + values.shape[1:], dtype=values.dtype)
    out[mask] = values
    return out
