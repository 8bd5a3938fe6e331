"""Head-motion correction: a robust reference volume and rigid registration of every volume to it.

Conventions
-----------
Every volume ``i`` gets a 4×4 RAS world matrix ``M_i`` mapping a point of the reference (boldref)
to the point where the same tissue lies in volume ``i`` — the head's displacement. Resampling
volume ``i`` at ``M_i p`` for every reference point ``p`` aligns it with the reference.

Motion parameters describe ``M_i`` about the centre ``c`` of the reference grid:
``M_i p = R (p - c) + c + t`` with ``R = Rz(rot_z) · Ry(rot_y) · Rx(rot_x)``; ``trans_*`` are the
components of ``t`` in mm along the RAS world axes and ``rot_*`` are right-handed rotations in
radians. A head moving 2 mm towards the subject's left (+x) has ``trans_x = +2``. This is also the
convention of the simulator's ground truth (``docs/simulation.md``), so estimates and truth compare
directly. About another centre ``c'`` the same motion has the same ``R`` and translation
``t + (R - I)(c' - c)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy import ndimage

from .antsutil import pointer, read_ants_linear, run_registration, scratch_dir, to_ants

LOG = logging.getLogger(__name__)
PARAM_NAMES = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
# Volumes of the first pass that build the reference (fMRIPrep averages up to ~20 at the start).
N_REFERENCE_VOLUMES = 10


@dataclass
class HMCSettings:
    """antsRegistration settings of the rigid per-volume registration.

    Same-contrast images with sub-voxel to few-mm motion: a mean-squares metric on a regular
    quarter of the voxels (measured as accurate as all voxels on 64×64×30 EPI, 3× faster), two
    levels (half resolution, then full) and early stopping once the metric stops improving.
    Each volume starts from the previous volume's estimate (``chain``): consecutive poses differ
    by the frame-to-frame motion only, so early stopping ends sooner (simulator, motion ×3:
    0.034 mm / 0.0017 rad RMS against 0.039 / 0.0017 from the identity, 0.47 against 0.55 s per
    volume on the same loaded machine). Fewer iterations (20 + 5) were as accurate on the
    simulator's random-walk motion but not on independent jumps of ±1.5 mm / ±0.02 rad per
    volume (0.0036 rad RMS on real EPI), so the budget stays 40 + 20.
    """

    iterations: tuple[int, ...] = (40, 20)
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_sigmas: tuple[float, ...] = (1.0, 0.0)
    gradient_step: float = 0.15
    convergence_threshold: float = 1e-6
    convergence_window: int = 5
    sampling: float = 0.25
    random_seed: int = 13
    chain: bool = True


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation matrices about world axis 0 (x), 1 (y) or 2 (z), one per angle."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(np.shape(angle) + (3, 3))
    i, j = {0: (1, 2), 1: (2, 0), 2: (0, 1)}[axis]  # cyclic order keeps every rotation right-handed
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def params_to_matrices(params: np.ndarray, center: Sequence[float]) -> np.ndarray:
    """Build ``(n, 4, 4)`` RAS matrices from ``(n, 6)`` motion parameters (see module docstring)."""
    params = np.atleast_2d(np.asarray(params, dtype=float))
    center = np.asarray(center, dtype=float)
    rot = _rot(2, params[:, 5]) @ _rot(1, params[:, 4]) @ _rot(0, params[:, 3])
    out = np.tile(np.eye(4), (params.shape[0], 1, 1))
    out[:, :3, :3] = rot
    out[:, :3, 3] = params[:, :3] + center - rot @ center
    return out


def matrices_to_params(matrices: np.ndarray, center: Sequence[float]) -> np.ndarray:
    """Motion parameters ``(n, 6)`` of rigid RAS matrices ``(n, 4, 4)`` about ``center``."""
    mats = np.asarray(matrices, dtype=float).reshape(-1, 4, 4)
    center = np.asarray(center, dtype=float)
    rot = mats[:, :3, :3]
    trans = mats[:, :3, 3] + rot @ center - center
    # R = Rz(g) Ry(b) Rx(a): R[2,0] = -sin b, R[2,1] = sin a cos b, R[2,2] = cos a cos b,
    # R[1,0] = cos b sin g, R[0,0] = cos b cos g.
    b = -np.arcsin(np.clip(rot[:, 2, 0], -1.0, 1.0))
    a = np.arctan2(rot[:, 2, 1], rot[:, 2, 2])
    g = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    return np.column_stack([trans, a, b, g])


def grid_center(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World (RAS) coordinates of the centre of a voxel grid."""
    ijk = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    return (np.asarray(affine, dtype=float) @ np.append(ijk, 1.0))[:3]


def resample_rigid(volume: np.ndarray, affine: np.ndarray, matrix: np.ndarray, order: int = 3,
                   mode: str = "constant") -> np.ndarray:
    """Resample a volume on its own grid at ``matrix @ p`` for every grid point ``p``.

    ``mode`` is :func:`scipy.ndimage.affine_transform`'s: ``"constant"`` fills points outside the
    volume with 0, ``"nearest"`` with the closest edge voxel.
    """
    vox = np.linalg.inv(affine) @ matrix @ affine
    return ndimage.affine_transform(volume.astype(np.float32, copy=False), vox[:3, :3], vox[:3, 3],
                                    order=order, mode=mode, cval=0.0, prefilter=order > 1)


def _metric(fixed, moving, sampling: float) -> str:
    """Mean squares on every voxel, or on a regular subsample of them when ``sampling`` < 1."""
    base = f"MeanSquares[{pointer(fixed)},{pointer(moving)},1,0"
    return base + (",None]" if sampling >= 1.0 else f",Regular,{sampling:g}]")


def _register_chunk(reference: np.ndarray, volumes: np.ndarray, affine: np.ndarray,
                    settings: HMCSettings, scratch: str | None) -> np.ndarray:
    """Rigidly register each volume of ``volumes`` (x, y, z, n) to ``reference``; RAS matrices."""
    out = np.empty((volumes.shape[-1], 4, 4))
    fixed = to_ants(reference, affine)
    with scratch_dir(scratch) as tmp:
        previous: Path | None = None
        for i in range(volumes.shape[-1]):
            moving = to_ants(volumes[..., i], affine)
            prefix = os.fspath(tmp / f"v{i:05d}_")
            start = os.fspath(previous) if settings.chain and previous is not None else "Identity"
            # No warped-image outputs: resampling both images after every registration took half
            # of the time per volume, and only the transform is used.
            run_registration([
                "--dimensionality", "3", "--float", "1",
                "-r", start,
                "--metric", _metric(fixed, moving, settings.sampling),
                "--transform", f"Rigid[{settings.gradient_step}]",
                "--convergence", "[{},{},{}]".format("x".join(map(str, settings.iterations)),
                                                     settings.convergence_threshold,
                                                     settings.convergence_window),
                "--smoothing-sigmas", "x".join(f"{s:g}" for s in settings.smoothing_sigmas) + "vox",
                "--shrink-factors", "x".join(map(str, settings.shrink_factors)),
                "-z", "1", "--random-seed", str(settings.random_seed),
                "--output", prefix,
            ])
            mat_path = Path(prefix + "0GenericAffine.mat")
            out[i] = read_ants_linear(mat_path)
            # The initial transform is collapsed into the output, so each file is the full pose.
            if previous is not None:
                previous.unlink()
            previous = mat_path
    return out


def _init_worker(itk_threads: int) -> None:
    # ITK reads its thread count once, when antspyx is first imported in this (fresh) process.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(itk_threads)


HMC_METHODS = ("torch", "ants")


def register_volumes(reference: np.ndarray, data: np.ndarray, affine: np.ndarray, *,
                     method: str = "torch", n_procs: int = 1, settings: HMCSettings | None = None,
                     scratch: str | os.PathLike | None = None) -> np.ndarray:
    """Rigidly register every volume of a series to a reference.

    ``method="torch"`` registers all volumes at once as one batched Gauss–Newton problem
    (:mod:`.batched_rigid`, CUDA when present, ``n_procs`` CPU threads otherwise);
    ``method="ants"`` runs one ``antsRegistration`` per volume (the reference implementation).

    Parameters
    ----------
    reference
        3-D reference volume on the same grid as ``data``.
    data
        4-D series ``(x, y, z, t)``.
    affine
        NIfTI affine of the grid.
    method
        ``"torch"`` or ``"ants"``.
    n_procs
        torch: CPU threads. ants: worker processes. antspyx holds the GIL while ANTs runs, so threads cannot run volumes in
        parallel; with ``n_procs > 1`` the volumes are split into contiguous chunks handled by
        separate processes, each with one ITK thread (small images gain little from ITK threads).
    settings
        ANTs registration settings (``method="ants"`` only).
    scratch
        Parent folder for ANTs' transform files (deleted afterwards); system temp dir by default.

    Returns
    -------
    numpy.ndarray
        ``(t, 4, 4)`` RAS matrices mapping reference points to volume points.
    """
    if method == "torch":
        from .batched_rigid import register_batched  # torch loads only when this method runs

        return register_batched(reference, data, affine, n_threads=n_procs)
    if method != "ants":
        raise ValueError(f"unknown head-motion method {method!r}; choose from {HMC_METHODS}")
    settings = settings or HMCSettings()
    n_vols = data.shape[-1]
    scratch_s = None if scratch is None else os.fspath(scratch)
    n_procs = max(1, min(int(n_procs), n_vols))
    if n_procs == 1:
        return _register_chunk(reference, data, affine, settings, scratch_s)
    bounds = np.linspace(0, n_vols, n_procs + 1).astype(int)
    ctx = get_context("spawn")
    with ProcessPoolExecutor(n_procs, mp_context=ctx, initializer=_init_worker,
                             initargs=(1,)) as pool:
        futures = [pool.submit(_register_chunk, reference, np.ascontiguousarray(data[..., a:b]),
                               affine, settings, scratch_s)
                   for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        return np.concatenate([f.result() for f in futures], axis=0)


def robust_reference(data: np.ndarray, affine: np.ndarray, *, n_volumes: int = N_REFERENCE_VOLUMES,
                     method: str = "torch", n_procs: int = 1, settings: HMCSettings | None = None,
                     scratch: str | os.PathLike | None = None) -> np.ndarray:
    """The boldref: median of the first steady-state volumes after aligning them (two passes).

    A plain median of the first volumes is blurred by whatever motion happens among them. The first
    pass registers those volumes to their median; the reference is the median of the aligned volumes.

    Parameters
    ----------
    data
        4-D steady-state series (non-steady-state volumes left out).
    affine
        NIfTI affine of the grid.
    n_volumes
        How many leading volumes to use.
    method, n_procs, settings, scratch
        As for :func:`register_volumes`.

    Returns
    -------
    numpy.ndarray
        float32 3-D reference volume.
    """
    first = np.asarray(data[..., :max(1, min(n_volumes, data.shape[-1]))], dtype=np.float32)
    if first.shape[-1] == 1:
        return first[..., 0].copy()
    provisional = np.median(first, axis=-1)
    mats = register_volumes(provisional, first, affine, method=method, n_procs=n_procs,
                            settings=settings, scratch=scratch)
    # Edge-voxel fill, not zeros: zeros where a volume moved out of the slab would give the median
    # a tissue-to-zero edge at the slab's border that no volume has (measured with the batched
    # registration: 0.007 against 0.0008 rad RMS on a 20-slice series).
    aligned = np.stack([resample_rigid(first[..., i], affine, mats[i], mode="nearest")
                        for i in range(first.shape[-1])], axis=-1)
    return np.median(aligned, axis=-1).astype(np.float32)


def framewise_rms(params_a: np.ndarray, params_b: np.ndarray) -> tuple[float, float]:
    """RMS differences of translations (mm) and rotations (rad) between two parameter sets."""
    diff = np.asarray(params_a, dtype=float) - np.asarray(params_b, dtype=float)
    return (float(np.sqrt(np.mean(diff[:, :3] ** 2))), float(np.sqrt(np.mean(diff[:, 3:] ** 2))))
