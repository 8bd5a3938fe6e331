"""Batched torch rigid registration: agreement with known motion, batching and thread invariance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bids_eeg2fmri.fmri import batched_rigid as br
from bids_eeg2fmri.fmri import motion
from fmri_synth import make_series


@pytest.fixture(scope="module")
def series():
    return make_series(shape=(40, 40, 24), zooms=(4.0, 4.0, 5.0), n_vols=8, noise=3.0, seed=7)


def test_recovers_motion_from_volume_zero(series):
    mats = br.register_batched(series.data[..., 0], series.data, series.affine, n_threads=1)
    c = motion.grid_center(series.data.shape, series.affine)
    # With volume 0 as the reference, volume i's estimate is true_i · true_0⁻¹.
    true = motion.params_to_matrices(series.params, c)
    rel = motion.matrices_to_params(true @ np.linalg.inv(true[0]), c)
    est = motion.matrices_to_params(mats, c)
    rms_t, rms_r = motion.framewise_rms(est, rel)
    assert rms_t < 0.1 and rms_r < 0.002, (rms_t, rms_r)
    # Rigid: every rotation block is orthonormal with determinant 1.
    rot = mats[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)


def test_result_does_not_depend_on_batch_or_threads(series):
    ref = series.data[..., 0]
    whole = br.register_batched(ref, series.data, series.affine, n_threads=1)
    small = br.register_batched(ref, series.data, series.affine, n_threads=2,
                                settings=dataclasses.replace(br.BatchedRigidSettings(), chunk=3))
    # Each volume converges on its own; reductions in float32 may differ in the last bits only.
    np.testing.assert_allclose(small, whole, atol=1e-4)
    again = br.register_batched(ref, series.data, series.affine, n_threads=1)
    np.testing.assert_array_equal(again, whole)


def test_thin_slab_with_through_plane_motion():
    # A 60 mm slab moving ±1.5 mm through-plane: edge slices leave the field of view; points that
    # fall outside a volume are left out of its sums instead of pulling it towards the identity.
    syn = make_series(shape=(40, 40, 12), zooms=(4.0, 4.0, 5.0), n_vols=8, noise=2.0, seed=3,
                      motion_sd=(1.5, 0.01))
    mats = br.register_batched(syn.data[..., 0], syn.data, syn.affine, n_threads=1)
    c = motion.grid_center(syn.data.shape, syn.affine)
    true = motion.params_to_matrices(syn.params, c)
    rel = motion.matrices_to_params(true @ np.linalg.inv(true[0]), c)
    rms_t, rms_r = motion.framewise_rms(motion.matrices_to_params(mats, c), rel)
    assert rms_t < 0.15 and rms_r < 0.003, (rms_t, rms_r)


def test_threads_restored():
    import torch

    before = torch.get_num_threads()
    with br.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_thin_grid_drops_the_pyramid_levels_it_cannot_shrink_to():
    """An 8×8×6 series (the coarsest level would be 2×2×1 voxels, with no gradient) registers at
    the levels it has instead of failing."""
    from scipy import ndimage

    kept = br._levels_for(br.BatchedRigidSettings(), (8, 8, 6))
    assert kept.shrink_factors == (2, 1) and len(kept.iterations) == len(kept.point_strides) == 2
    grid = np.indices((8, 8, 6)).astype(float)
    ref = np.exp(-((grid[0] - 3.5) ** 2 + (grid[1] - 3.5) ** 2 + (grid[2] - 2.5) ** 2) / 6.0)
    ref = (100 * ref + 10).astype(np.float32)
    moved = ndimage.shift(ref, (0.3, 0.0, 0.0), order=3, mode="nearest")
    mats = br.register_batched(ref, np.stack([ref, moved], axis=-1), np.diag([3.0, 3.0, 4.0, 1.0]),
                            n_threads=1)
    assert mats.shape == (2, 4, 4) and np.isfinite(mats).all()
    np.testing.assert_allclose(np.linalg.det(mats[:, :3, :3]), 1.0, atol=1e-6)
