"""BOLD acquisition: oblique EPI grid, slice timing, head motion, dummy scans and noise.

Voxel ``v`` (slice ``k = v[2]``) of volume ``t`` is acquired at ``t·TR + SliceTiming[k]``. Its
scanner position ``x = E·v`` (``E``: the EPI affine) holds the head point ``h = M_t⁻¹·x`` where
``M_t`` is the head pose at volume ``t`` (identity at volume 0). The head point is mapped to MNI
(:class:`~.anatomy.SubjectAnatomy`) and there the contrast ``C``, region label ``r`` and
physiological weights ``m_j`` are sampled. Then

    noiseless = C · (1 + a·x_r(t·TR + SliceTiming[k]))
    mean      = C · f_t · (1 + a·x_r(…) + drift_t + Σ_j m_j·φ_j(t))
    BOLD      = |mean + σ·(n₁ + i·n₂)|          (magnitude of complex Gaussian noise)

with ``x_r = HRF∗source`` of the source driving region ``r`` (0 for un-driven regions), ``f_t``
the dummy-scan overshoot (1 after the dummy scans) and ``σ = grey-matter baseline / SNR``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import BRAIN_CENTRE_MNI, MNIModel, SubjectAnatomy, rotation_matrix
from .params import SimulationParams
from .sources import Sources, interp_columns

#: DCT high-pass cut-off (s) used for the drift model and the noise-ceiling detrending.
HIGHPASS_PERIOD = 128.0
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def slice_timing(n_slices: int, ta: float, order: str, mb: int = 1) -> np.ndarray:
    """Acquisition time of each slice (s from the volume onset), indexed by slice number.

    Parameters
    ----------
    n_slices
        Slices per volume (along the third voxel axis).
    ta
        Time taken by all slices.
    order
        ``sequential`` (ascending), ``interleaved`` (Siemens: odd-numbered slices first when
        the count is even, even-numbered first when odd) or ``multiband``.
    mb
        Multiband factor: slices ``k`` and ``k + n_slices/mb`` are excited together, the
        shots interleaved.

    Returns
    -------
    numpy.ndarray
        (n_slices,) rounded to 0.1 µs so that the sidecar and the simulation agree exactly.
    """
    n_shots = n_slices // mb
    if order == "sequential":
        shot_order = np.arange(n_shots)
    else:
        first = 1 if n_shots % 2 == 0 else 0
        shot_order = np.concatenate([np.arange(first, n_shots, 2), np.arange(1 - first, n_shots, 2)])
    position = np.empty(n_shots, dtype=int)
    position[shot_order] = np.arange(n_shots)
    times = position[np.arange(n_slices) % n_shots] * (ta / n_shots)
    return np.round(times, 7)


def head_rotation(anatomy: SubjectAnatomy) -> np.ndarray:
    """Rotation of the subject's brain in the scanner: the nearest rotation to MNI → head."""
    u, _, vt = np.linalg.svd(np.linalg.inv(anatomy.affine)[:3, :3])
    rot = u @ vt
    if np.linalg.det(rot) < 0:
        rot = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return rot


def epi_affine(grid: tuple[int, int, int], voxel_size: tuple[float, float, float],
               centre: np.ndarray, tilt: np.ndarray, head: np.ndarray | None = None
               ) -> np.ndarray:
    """Oblique EPI affine: LAS storage order, centred on ``centre``.

    With ``head`` (3×3, the head's rotation in the scanner frame) the slab is planned on the
    brain, as an operator prescribes a whole-brain acquisition on the localiser: it follows
    the head and deviates from the brain's axes by ``tilt`` (rad). Without it the tilt is from
    the scanner's axes, and with the head rotated the slab can sit ~20° off the brain's axes: a
    120 mm slab then misses most of an anterior-inferior region (64 % of the left temporal pole
    for the realistic-size subject of the fMRI tests, 21° off).
    """
    rot = rotation_matrix(*tilt) if head is None else head @ rotation_matrix(*tilt)
    lin = rot @ np.diag([-voxel_size[0], voxel_size[1], voxel_size[2]])
    mid = (np.asarray(grid, dtype=float) - 1.0) / 2.0
    aff = np.eye(4)
    aff[:3, :3] = lin
    aff[:3, 3] = centre - lin @ mid
    return aff


def simulate_motion(rng: np.random.Generator, n_volumes: int, scale: float) -> np.ndarray:
    """Head motion per volume: a random walk plus rare one-volume spikes (fMRIPrep columns).

    Returns
    -------
    numpy.ndarray
        (T, 6) ``trans_x, trans_y, trans_z`` (mm) and ``rot_x, rot_y, rot_z`` (rad); row 0 is 0.
    """
    steps = np.concatenate([rng.normal(0.0, 0.04, (n_volumes, 3)),
                            rng.normal(0.0, 6e-4, (n_volumes, 3))], axis=1)
    steps[0] = 0.0
    walk = np.cumsum(steps, axis=0)
    spikes = rng.random(n_volumes) < 0.03
    spikes[0] = False
    jerk = np.concatenate([rng.normal(0.0, 0.7, (n_volumes, 3)),
                           rng.normal(0.0, 0.01, (n_volumes, 3))], axis=1)
    walk[spikes] += jerk[spikes]
    return walk * scale


def motion_matrix(params: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Head pose of one volume: ``x ↦ R·(x − c) + c + t`` in scanner RAS mm.

    ``R = Rz(rot_z)·Ry(rot_y)·Rx(rot_x)``, ``t = (trans_x, trans_y, trans_z)``, ``c`` the
    rotation centre. This maps a point of the head at volume 0 to where it is at volume ``t``:
    the fixed→moving transform a registration of volume ``t`` onto volume 0 recovers.
    """
    rot = rotation_matrix(*params[3:6])
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = centre + params[:3] - rot @ centre
    return out


def dct_basis(n: int, tr: float, period: float = HIGHPASS_PERIOD) -> np.ndarray:
    """Discrete cosine regressors slower than ``period`` (without the constant), (n, K)."""
    k_max = int(np.floor(2.0 * n * tr / period))
    t = np.arange(n)
    cols = [np.cos(np.pi * k * (t + 0.5) / n) for k in range(1, k_max + 1)]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def detrend(y: np.ndarray, tr: float) -> np.ndarray:
    """Remove the mean and the DCT drift regressors from the columns of ``y`` (n, R)."""
    y = np.asarray(y, dtype=float)
    if dct_basis(y.shape[0], tr).shape[1] == 0:
        return y - y.mean(axis=0)
    from nilearn.signal import clean

    # nilearn's cosine filter keeps the mean: remove it after.
    out = clean(y, detrend=False, standardize=None, filter="cosine", high_pass=1.0 / HIGHPASS_PERIOD,
                t_r=tr, standardize_confounds=False)
    return out - out.mean(axis=0)


@dataclass
class BoldRun:
    """One simulated BOLD run and its ground truth.

    Attributes
    ----------
    data
        (X, Y, Z, T) int16 magnitude images as the scanner writes them.
    noiseless
        (X, Y, Z, T) float32: same sampling (motion, slice timing), no noise, drift,
        physiology or dummy overshoot.
    noiseless_mni
        (X', Y', Z', T) float32 on the MNI truth grid: no motion, sampled at
        ``t·TR + slice_time_ref``.
    mni_affine, affine
        Grids of ``noiseless_mni`` and of ``data``.
    slice_timing, slice_time_ref
        Seconds from the volume onset; reference time of ``noiseless_mni`` and ``regional``.
    motion, motion_matrices, motion_centre
        (T, 6) parameters, (T, 4, 4) poses, rotation centre (3,).
    regional, regional_per_slice
        (T, R) fractional BOLD change ``a·HRF∗source`` of each region at the reference time;
        (T, S, R) the same at each slice's acquisition time.
    noise_ceiling
        (R,) r between noiseless and noisy regional signal (NaN for un-driven regions).
    dummy_factors
        (dummy_scans,) intensity factor of each dummy volume.
    thermal_sd
        σ of the thermal noise.
    drift
        (T,) fractional slow drift added to every voxel.
    """

    data: np.ndarray
    noiseless: np.ndarray
    noiseless_mni: np.ndarray
    mni_affine: np.ndarray
    affine: np.ndarray
    slice_timing: np.ndarray
    slice_time_ref: float
    motion: np.ndarray
    motion_matrices: np.ndarray
    motion_centre: np.ndarray
    regional: np.ndarray
    regional_per_slice: np.ndarray
    noise_ceiling: np.ndarray
    dummy_factors: np.ndarray
    thermal_sd: float
    drift: np.ndarray


def region_drive(params: SimulationParams, n_regions: int) -> np.ndarray:
    """Index of the source driving each region, −1 for un-driven regions."""
    drive = -np.ones(n_regions, dtype=int)
    drive[: params.sources] = np.arange(params.sources)
    return drive


def simulate_bold(rng: np.random.Generator, params: SimulationParams, mni: MNIModel,
                  anatomy: SubjectAnatomy, sources: Sources, truth_grid: tuple[tuple[int, ...],
                                                                              np.ndarray],
                  ) -> BoldRun:
    """Acquire one BOLD run of ``params.volumes`` volumes from ``sources``.

    Parameters
    ----------
    rng
        The run's BOLD generator.
    params
        Simulation options.
    mni
        Contrast, labels and physiological maps.
    anatomy
        The subject's head → MNI mapping.
    sources
        The run's latent sources.
    truth_grid
        Shape and affine of the MNI grid of the noiseless ground truth.

    Returns
    -------
    BoldRun
    """
    n_vol, tr, amp = params.volumes, params.tr, params.bold_amplitude
    grid = tuple(int(g) for g in params.grid)
    n_regions = len(mni.region_names)
    st = slice_timing(params.n_slices, params.ta, params.slice_order, params.mb)
    tilt = np.deg2rad(rng.uniform(-1.0, 1.0, 3) * params.obliquity_deg * np.array([1.0, 0.3, 0.3]))
    centre = np.linalg.solve(anatomy.affine, np.append(BRAIN_CENTRE_MNI, 1.0))[:3]
    affine = epi_affine(grid, params.voxel_size, centre, tilt,
                        head_rotation(anatomy) if params.slab_follows_head else None)
    motion = simulate_motion(rng, n_vol, params.motion_scale)
    matrices = np.stack([motion_matrix(m, centre) for m in motion])

    # Regional BOLD change at every slice time and at the reference time; column 0 = no region.
    drive = region_drive(params, n_regions)
    acq_times = np.arange(n_vol)[:, None] * tr + st[None, :]
    x_src = interp_columns(acq_times.ravel(), sources.times, sources.hrf)
    per_slice = np.zeros((n_vol, params.n_slices, n_regions + 1), dtype=np.float64)
    for r in np.flatnonzero(drive >= 0):
        per_slice[:, :, r + 1] = amp * x_src[:, drive[r]].reshape(n_vol, params.n_slices)
    slice_time_ref = float(np.round(0.5 * (st.min() + st.max()), 7))
    ref_times = np.arange(n_vol) * tr + slice_time_ref
    x_ref = interp_columns(ref_times, sources.times, sources.hrf)
    regional = np.zeros((n_vol, n_regions + 1))
    for r in np.flatnonzero(drive >= 0):
        regional[:, r + 1] = amp * x_ref[:, drive[r]]

    # Nuisance: dummy overshoot, slow drift (slower than the high-pass), physiology.
    dummy = 1.0 + params.dummy_overshoot * 0.4 ** np.arange(params.dummy_scans)
    factors = np.ones(n_vol)
    factors[: params.dummy_scans] = dummy
    basis = dct_basis(n_vol, tr)
    # Coefficients share the variance so that the drift's SD is about ``params.drift``.
    drift = (basis @ rng.normal(0.0, params.drift * np.sqrt(2.0 / basis.shape[1]),
                                basis.shape[1])) if basis.shape[1] else np.zeros(n_vol)
    phi = rng.normal(0.0, params.physio_noise, (n_vol, mni.physio_maps.shape[0]))
    phi[1:] += 0.3 * phi[:-1]
    sigma = float(720.0 / params.snr)

    ijk = np.indices(grid, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    zidx = ijk[2].astype(np.intp)
    data = np.empty(grid + (n_vol,), dtype=np.int16)
    clean = np.empty(grid + (n_vol,), dtype=np.float32)
    sums = np.zeros((2, n_vol, n_regions + 1))
    for t in range(n_vol):
        inv = np.linalg.inv(matrices[t])
        head = inv[:3, :3] @ world + inv[:3, 3:4]
        con, lab, phys = mni.sample(anatomy.to_mni(head))
        sig = per_slice[t][zidx, lab].astype(np.float32)
        noiseless = con * (1.0 + sig)
        mean = con * np.float32(factors[t]) * (1.0 + sig + np.float32(drift[t])
                                               + phi[t].astype(np.float32) @ phys)
        noise = rng.standard_normal((2, mean.size), dtype=np.float32) * np.float32(sigma)
        noisy = np.sqrt((mean + noise[0]) ** 2 + noise[1] ** 2)
        data[..., t] = np.clip(np.rint(noisy), 0, 32767).astype(np.int16).reshape(grid)
        clean[..., t] = noiseless.reshape(grid)
        # Regional means with ideal motion correction and baseline normalisation: what a
        # perfect pipeline would see of each region, for the noise ceiling.
        ok = con > 0.2 * 720.0
        counts = np.bincount(lab[ok], minlength=n_regions + 1)
        counts = np.maximum(counts, 1)
        sums[0, t] = np.bincount(lab[ok], weights=noisy[ok] / con[ok] - 1.0,
                                 minlength=n_regions + 1) / counts
        sums[1, t] = np.bincount(lab[ok], weights=sig[ok], minlength=n_regions + 1) / counts

    keep = slice(params.dummy_scans, None)
    noisy_r = detrend(sums[0, keep, 1:], tr)
    clean_r = detrend(sums[1, keep, 1:], tr)
    ceiling = np.full(n_regions, np.nan)
    for r in np.flatnonzero(drive >= 0):
        if clean_r[:, r].std() > 0 and noisy_r[:, r].std() > 0:
            ceiling[r] = float(np.corrcoef(clean_r[:, r], noisy_r[:, r])[0, 1])

    shape_m, aff_m = truth_grid
    ijk_m = np.indices(shape_m, dtype=np.float64).reshape(3, -1)
    con_m, lab_m, _ = mni.sample(aff_m[:3, :3] @ ijk_m + aff_m[:3, 3:4])
    mni_data = 1.0 + regional.astype(np.float32)[:, lab_m].T  # float32 all the way: large
    mni_data *= con_m[:, None]
    mni_data = mni_data.reshape(tuple(shape_m) + (n_vol,))
    return BoldRun(data=data, noiseless=clean, noiseless_mni=mni_data, mni_affine=aff_m,
                   affine=affine, slice_timing=st, slice_time_ref=slice_time_ref, motion=motion,
                   motion_matrices=matrices, motion_centre=centre, regional=regional[:, 1:],
                   regional_per_slice=per_slice[:, :, 1:], noise_ceiling=ceiling,
                   dummy_factors=dummy, thermal_sd=sigma, drift=drift)
