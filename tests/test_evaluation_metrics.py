"""Brain-aware image metrics against scikit-image, and why the brain-only SSIM is the headline."""

from __future__ import annotations

import numpy as np
import pytest

from bids_eeg2fmri.evaluation import volumes as V

skm = pytest.importorskip("skimage.metrics")


def _volumes(seed=0, shape=(12, 14, 10)):
    rng = np.random.default_rng(seed)
    idx = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    mask = ((((idx - centre[:, None, None, None]) / (np.array(shape)[:, None, None, None] / 2.2))
             ** 2).sum(0) <= 1)
    true = np.where(mask, rng.normal(size=shape), 0.0)
    pred = np.where(mask, 0.6 * true + 0.8 * rng.normal(size=shape), 0.0)
    return pred, true, mask


@pytest.mark.parametrize("win", [3, 5])
def test_ssim_map_and_volume_match_skimage(win):
    pred, true, mask = _volumes()
    rng = float(true.max() - true.min())
    mean, full = skm.structural_similarity(true, pred, win_size=win, data_range=rng, full=True)
    ours = V.ssim_map(pred, true, data_range=rng, win_size=win)
    np.testing.assert_allclose(ours, full, rtol=1e-10, atol=1e-12)
    assert V.ssim_volume(pred, true, data_range=rng, win_size=win) == pytest.approx(mean, abs=1e-12)
    # The brain-only SSIM is the mask-weighted mean of scikit-image's map.
    assert V.ssim_brain(pred, true, mask, data_range=rng, win_size=win) == pytest.approx(
        full[mask].mean(), abs=1e-12)


def test_slice_ssim_matches_skimage_per_slice():
    pred, true, _ = _volumes(1)
    expected = np.mean([skm.structural_similarity(true[..., k], pred[..., k], win_size=7,
                                                  data_range=2.0) for k in range(true.shape[2])])
    assert V.ssim_slices(pred, true, data_range=2.0) == pytest.approx(expected, abs=1e-12)


def test_psnr_matches_skimage_and_masks():
    pred, true, mask = _volumes(2)
    assert V.psnr(pred, true, data_range=3.0) == pytest.approx(
        skm.peak_signal_noise_ratio(true, pred, data_range=3.0), abs=1e-10)
    brain = V.psnr(pred, true, data_range=3.0, mask=mask)
    assert brain == pytest.approx(skm.peak_signal_noise_ratio(true[mask], pred[mask],
                                                              data_range=3.0), abs=1e-10)
    # Background errors are zero: the whole-volume PSNR flatters the same prediction.
    assert V.psnr(pred, true, data_range=3.0) > brain


def test_background_inflates_whole_volume_ssim_not_brain_ssim():
    """A constant (mean) prediction of zero-mean fluctuations: near-zero SSIM in the brain, but
    the zero-filled background lifts the whole-volume SSIM."""
    _, true, mask = _volumes(3, shape=(20, 20, 16))
    flat = np.zeros_like(true)
    rng = float(true.max() - true.min())
    brain = V.ssim_brain(flat, true, mask, data_range=rng)
    whole = V.ssim_volume(flat, true, data_range=rng)
    assert brain < 0.2
    assert whole > brain + 0.2


def test_volume_scores_average_over_volumes():
    pred, true, mask = _volumes(4)
    vols_p = np.stack([pred[mask], 0.5 * pred[mask]])
    vols_t = np.stack([true[mask], true[mask]])
    s = V.volume_scores(vols_p, vols_t, mask, data_range=4.0)
    first = V.ssim_brain(pred, true, mask, data_range=4.0)
    half = V.ssim_brain(np.where(mask, 0.5 * pred, 0), true, mask, data_range=4.0)
    assert s["ssim_brain"] == pytest.approx((first + half) / 2)
    halved = np.where(mask, 0.5 * pred, 0)
    assert s["ssim_slices2d"] == pytest.approx(np.mean(
        [V.ssim_slices(pred, true, data_range=4.0), V.ssim_slices(halved, true, data_range=4.0)]))
    assert s["psnr_volume"] == pytest.approx(np.mean(
        [V.psnr(pred, true, data_range=4.0), V.psnr(halved, true, data_range=4.0)]))
    # Scoring in chunks changes nothing.
    assert V.volume_scores(vols_p, vols_t, mask, data_range=4.0, chunk=1) == pytest.approx(s)
    assert set(s) == {"ssim_brain", "ssim_volume3d", "ssim_slices2d", "psnr_brain", "psnr_volume"}
    with pytest.raises(ValueError, match="too small"):
        V.fit_window(7, (2, 9))
