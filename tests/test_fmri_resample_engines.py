"""The two resampling engines (SciPy on CPU, batched torch for CUDA) agree, chunking included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bids_eeg2fmri.fmri import motion
from bids_eeg2fmri.fmri import resample


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    data = ndimage.gaussian_filter(rng.normal(0, 1, (20, 22, 12, 5)), (1, 1, 1, 0))
    data = (100 * data + 500).astype(np.float32)
    bold_aff = np.diag([2.0, 2.0, 3.0, 1.0])
    mask = np.ones((12, 12, 10), bool)
    out_aff = np.diag([3.0, 3.0, 3.0, 1.0])
    out_aff[:3, 3] = [1.0, 2.0, 0.5]
    params = np.column_stack([rng.normal(0, 1.5, (5, 3)), rng.normal(0, 0.03, (5, 3))])
    hmc = motion.params_to_matrices(params, motion.grid_center(data.shape, bold_aff))
    return data, bold_aff, hmc, mask, out_aff


@pytest.mark.parametrize("order", [1, 3])
def test_torch_engine_matches_scipy(case, order, monkeypatch):
    data, bold_aff, hmc, mask, out_aff = case
    ref, ref_cov = resample.resample_series(data, bold_aff, hmc, None, None, mask, out_aff,
                                            order=order, return_coverage=True, engine="scipy")
    # Several chunks of volumes: the chunking must not show in the result.
    monkeypatch.setattr(resample, "POINT_BUDGET", 2 * int(mask.sum()))
    got, got_cov = resample.resample_series(data, bold_aff, hmc, None, None, mask, out_aff,
                                            order=order, return_coverage=True, engine="torch",
                                            device="cpu")
    assert 0.05 < ref_cov.mean() < 1.0  # some points leave the grid: the edge rules are tested
    np.testing.assert_array_equal(got_cov, ref_cov)
    np.testing.assert_allclose(got, ref, atol=2e-3)  # float32 evaluation of values near 500
    assert (ref == 0).any()


def test_cubic_differs_from_trilinear(case):
    # Guards the comparison above against an engine silently falling back to linear.
    data, bold_aff, hmc, mask, out_aff = case
    cubic = resample.resample_series(data, bold_aff, hmc, None, None, mask, out_aff,
                                     engine="torch", device="cpu")
    linear = resample.resample_series(data, bold_aff, hmc, None, None, mask, out_aff, order=1,
                                      engine="torch", device="cpu")
    assert np.abs(cubic - linear).max() > 1.0


def test_bad_engine_or_order_refused(case):
    data, bold_aff, hmc, mask, out_aff = case
    with pytest.raises(ValueError, match="engine"):
        resample.resample_series(data, bold_aff, hmc, None, None, mask, out_aff, engine="numba")
    with pytest.raises(ValueError, match="order"):
        resample.resample_series(data, bold_aff, hmc, None, None, mask, out_aff, order=2)
