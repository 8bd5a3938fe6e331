"""Metrics against independent formulas (numpy loops, scipy.stats, scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bids_eeg2fmri import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(40, 7))
    pred = 0.6 * true + rng.normal(scale=0.5, size=true.shape)
    return pred, true


def test_mse_rmse_psnr(pair):
    pred, true = pair
    ref = sum((p - t) ** 2 for p, t in zip(pred.ravel(), true.ravel())) / pred.size
    assert metrics.mse(pred, true) == pytest.approx(ref)
    assert metrics.rmse(pred, true) == pytest.approx(np.sqrt(ref))
    rng_ = true.max() - true.min()
    assert metrics.psnr(pred, true) == pytest.approx(10 * np.log10(rng_ ** 2 / ref))
    assert metrics.psnr(pred, true, data_range=2.0) == pytest.approx(10 * np.log10(4 / ref))
    assert metrics.psnr(true, true) == float("inf")


def test_pearson_temporal_and_spatial(pair):
    pred, true = pair
    r_t = metrics.pearson_temporal(pred, true)
    r_s = metrics.pearson_spatial(pred, true)
    assert r_t == pytest.approx([stats.pearsonr(pred[:, j], true[:, j])[0] for j in range(7)])
    assert r_s == pytest.approx([stats.pearsonr(pred[i], true[i])[0] for i in range(40)])
    const = true.copy()
    const[:, 0] = 3.0
    assert np.isnan(metrics.pearson_temporal(pred, const)[0])
    with pytest.raises(ValueError, match="shape"):
        metrics.mse(pred, true[:, :3])


def test_region_r_and_fc(pair):
    pred, true = pair
    labels = np.array([0, 1, 1, 2, 2, 3, 3])
    got = metrics.region_r(pred, true, labels)
    assert sorted(got) == [1, 2, 3]
    for lab in (1, 2, 3):
        cols = labels == lab
        assert got[lab] == pytest.approx(stats.pearsonr(pred[:, cols].mean(1), true[:, cols].mean(1))[0])
    a, b = np.corrcoef(pred.T), np.corrcoef(true.T)
    iu = np.triu_indices(7, 1)
    assert metrics.fc_similarity(pred, true) == pytest.approx(np.corrcoef(a[iu], b[iu])[0, 1])
    assert metrics.fc_similarity(true, true) == pytest.approx(1.0)


def test_noise_ceiling_matches_theory():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(20000, 2)) * [1.0, 2.0]
    measured = signal + rng.normal(size=signal.shape)
    ceiling = metrics.noise_ceiling(signal, measured)
    assert ceiling == pytest.approx(np.sqrt([1 / 2, 4 / 5]), abs=0.01)


def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(2)
    true = rng.normal(size=(6, 7, 6))
    pred = true + rng.normal(scale=0.7, size=true.shape)
    for win in (3, 5):
        ref = skm.structural_similarity(true, pred, win_size=win, data_range=4.0)
        assert metrics.ssim3d(pred, true, data_range=4.0, win_size=win) == pytest.approx(ref, rel=1e-9)
    assert metrics.ssim3d(true, true) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        metrics.ssim3d(pred, true, win_size=4)
