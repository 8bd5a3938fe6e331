"""Slice-timing correction: exact shifts of known signals, conventions, and real vendor sidecars."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bids_eeg2fmri.bids.layout import read_bold_run
from bids_eeg2fmri.fmri.slice_timing import (fourier_shift, slice_axis, slice_time_correct,
                                             slice_times_by_index)


@pytest.mark.parametrize("period", [10.0, 17.3, 40.0])
@pytest.mark.parametrize("fraction", [0.25, -0.4, 0.5])
def test_sinusoid_shift_below_one_percent(period, fraction):
    n = 120
    t = np.arange(n, dtype=float)
    x = 3.0 + 0.01 * t + np.sin(2 * np.pi * t / period + 0.3)
    truth = 3.0 + 0.01 * (t + fraction) + np.sin(2 * np.pi * (t + fraction) / period + 0.3)
    err = np.abs(fourier_shift(x, fraction) - truth)
    # The amplitude is 1: errors are fractions of it. The first/last two samples extrapolate
    # beyond the recording and are judged by the RMS only.
    assert err[2:-2].max() < 0.01
    assert np.sqrt(np.mean(err ** 2)) < 0.01


def test_zero_shift_is_identity():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(4, 5, 6, 30)).astype(np.float32)
    out = slice_time_correct(data, [0.0] * 6, 2.0, ref_fraction=0.0)
    np.testing.assert_array_equal(out, data)
    np.testing.assert_allclose(fourier_shift(data[0, 0, 0], 0.0), data[0, 0, 0], atol=1e-6)


def _driven(shape, axis, times_by_index, tr, n, period=12.0):
    """4-D series whose slice k samples sin(2πt/P) at n·TR + t_k; returns data and the truth fn."""
    def f(t):
        return 100.0 + 10.0 * np.sin(2 * np.pi * t / (period * tr))
    data = np.empty(shape + (n,), dtype=np.float32)
    moved = np.moveaxis(data, axis, 0)
    for k, tk in enumerate(times_by_index):
        moved[k] = f(np.arange(n) * tr + tk)
    return data, f


@pytest.mark.parametrize("direction", ["i", "j", "k", "i-", "j-", "k-"])
def test_every_slice_direction_lands_on_reference(direction):
    tr, n = 2.0, 60
    n_slices = 6
    st = [0.0, 1.0, 0.333, 1.333, 0.667, 1.667]  # interleaved
    axis = slice_axis(direction)
    shape = [3, 4, 5]
    shape[axis] = n_slices
    data, f = _driven(tuple(shape), axis, slice_times_by_index(st, direction), tr, n)
    out = slice_time_correct(data, st, tr, slice_encoding_direction=direction, ref_fraction=0.5)
    truth = f(np.arange(n) * tr + 0.5 * tr)
    err_before = np.abs(data - truth)[..., 3:-3].max()
    err_after = np.abs(out - truth)[..., 3:-3].max()
    assert err_after < 0.01 * 10.0 < err_before


def test_wrong_direction_is_detectably_wrong():
    # Guards the "-" convention: reading k- as k must not land on the reference.
    tr, n, st = 2.0, 60, [0.0, 0.4, 0.8, 1.2, 1.6]
    data, f = _driven((3, 3, 5), 2, slice_times_by_index(st, "k-"), tr, n)
    truth = f(np.arange(n) * tr + tr / 2)
    wrong = slice_time_correct(data, st, tr, slice_encoding_direction="k")
    right = slice_time_correct(data, st, tr, slice_encoding_direction="k-")
    assert np.abs(right - truth)[..., 3:-3].max() < 0.1 < np.abs(wrong - truth)[..., 3:-3].max()


def test_multiband_repeated_times_match_voxelwise_loop():
    rng = np.random.default_rng(3)
    tr = 1.0
    st = [0.0, 0.5, 0.25, 0.75] * 2  # MB2: slices k and k + 4 together
    data = rng.normal(size=(5, 4, 8, 25)).astype(np.float32).cumsum(axis=-1)
    out = slice_time_correct(data, st, tr, ref_fraction=0.3)
    # Reference: an explicit loop over every voxel with the scalar shift of its slice.
    ref = np.empty_like(out)
    for i in range(5):
        for j in range(4):
            for k in range(8):
                ref[i, j, k] = fourier_shift(data[i, j, k], (0.3 * tr - st[k]) / tr)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_correction_improves_interleaved_signal():
    # A slow "BOLD-like" signal sampled at interleaved slice times: after correction every slice
    # correlates better with the signal at the reference time.
    rng = np.random.default_rng(4)
    tr, n = 2.0, 100
    st = list(np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]) * tr / 10)
    t_fine = np.arange(0, n * tr + 10, 0.1)
    sig = np.convolve(rng.normal(size=t_fine.size), np.hanning(150), mode="same")  # ≲ 0.1 Hz
    def f(t):
        return np.interp(t, t_fine, sig)
    data = np.empty((2, 2, 10, n), dtype=np.float32)
    for k in range(10):
        data[:, :, k] = f(np.arange(n) * tr + st[k])
    truth = f(np.arange(n) * tr + tr / 2)
    out = slice_time_correct(data, st, tr)
    before = [np.corrcoef(data[0, 0, k], truth)[0, 1] for k in range(10)]
    after = [np.corrcoef(out[0, 0, k], truth)[0, 1] for k in range(10)]
    # Unexplained variance (1 - r) drops at least tenfold.
    assert np.mean(1 - np.array(after)) < 0.1 * np.mean(1 - np.array(before))
    far = [k for k in range(10) if abs(st[k] - tr / 2) > 0.2 * tr]
    assert all(after[k] > before[k] for k in far)
    assert min(after) > 0.99


def test_real_vendor_sidecars_are_parsed_and_corrected(realdata):
    files = sorted((realdata / "bold" / "dcm_qa_stc").glob("*.nii"))
    assert len(files) >= 5
    seen_repeated = False
    for path in files:
        run = read_bold_run(path)
        assert run.slice_timing is not None
        seen_repeated |= len(set(run.slice_timing)) < len(run.slice_timing)
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        out = slice_time_correct(data, run.slice_timing, run.repetition_time,
                                 slice_encoding_direction=run.slice_encoding_direction)
        assert out.shape == data.shape and np.isfinite(out).all()
        # Slices acquired exactly at the reference time are unchanged.
        times = slice_times_by_index(run.slice_timing, run.slice_encoding_direction)
        at_ref = np.flatnonzero(np.isclose(times, 0.5 * run.repetition_time))
        for k in at_ref:
            np.testing.assert_allclose(out[:, :, k], data[:, :, k], rtol=1e-5)
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["RepetitionTime"] == run.repetition_time
    assert seen_repeated, "the multiband file with repeated slice times must be among them"
