"""Gradient (AAS) and BCG (PCA-OBS) correction, resampling, filters and bad channels."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest
from mne.preprocessing import GradientRemover

from bids_eeg2fmri.eeg import artifacts, filtering
from bids_eeg2fmri.errors import DataError

FILE = "/data/sub-01/eeg/sub-01_task-rest_eeg.vhdr"
SFREQ = 1000.0
TR = 1.5
N_VOL = 30
START = 2.0
CH = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "Fz", "Cz"]


def _eeg(seconds: float, sfreq: float = SFREQ, seed: int = 0) -> np.ndarray:
    """Brown-ish EEG at ~20 µV: integrated white noise, high-passed by a leak."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(CH), int(seconds * sfreq)))
    x = mne.filter.filter_data(x, sfreq, 1.0, 40.0, verbose=False)
    return x / x.std(axis=1, keepdims=True) * 20e-6


def _gradient(n_times: int, onsets: np.ndarray, sfreq: float = SFREQ, n_slices: int = 15) -> np.ndarray:
    """Slice-periodic ramps of ~5 mV, the same in every volume, scaled per channel."""
    per_vol = int(TR * sfreq)
    t = np.arange(per_vol) / sfreq
    slice_t = (t * n_slices / TR) % 1.0
    shape = 5e-3 * (np.sign(np.sin(2 * np.pi * slice_t)) * (slice_t < 0.6)
                    + 0.3 * np.sin(2 * np.pi * 7 * slice_t))
    art = np.zeros(n_times)
    for o in onsets:
        art[o:o + per_vol] = shape
    gains = np.linspace(0.5, 1.5, len(CH))[:, None]
    return gains * art


def _raw(data: np.ndarray, sfreq: float = SFREQ, ch_types="eeg", names=None) -> mne.io.RawArray:
    info = mne.create_info(names or CH, sfreq, ch_types)
    return mne.io.RawArray(data.copy(), info, verbose=False)


def _onsets(sfreq: float = SFREQ) -> np.ndarray:
    return np.round((START + np.arange(N_VOL) * TR) * sfreq).astype(np.int64)


def test_fast_remover_equals_mne_gradient_remover():
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, 40_000))
    ev = np.arange(500, 38_000, 1500)
    ref = GradientRemover(data, ev, window=(4, 4)).correct()
    got = artifacts._FastGradientRemover(data, ev, window=(4, 4)).correct()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_gradient_detected_removed_everywhere_and_left_alone_on_clean_eeg():
    n = int((START + N_VOL * TR + 2) * SFREQ)
    clean = _eeg(n / SFREQ)
    on = _onsets()
    raw = _raw(clean + _gradient(n, on))
    report = artifacts.correct_gradient(raw, on, "auto", path=FILE)
    assert report.method == "AAS" and report.detected and report.template_ratio > 50
    err = raw.get_data() - clean
    # every volume, the first and last included (one-sided templates there), back at EEG level
    per_tr = int(TR * SFREQ)
    for v in range(N_VOL):
        seg = slice(on[v], on[v] + per_tr)
        rms_err = np.sqrt(np.mean(mne.filter.filter_data(err, SFREQ, 1, 30, verbose=False)[:, seg] ** 2))
        assert rms_err < 0.5 * 20e-6, f"volume {v}: residual {rms_err * 1e6:.1f} µV"
    # clean EEG: no artifact detected, data untouched in auto mode
    raw = _raw(clean)
    report = artifacts.correct_gradient(raw, on, "auto")
    assert report.method == "none" and report.detected is False and report.template_ratio < 0.5
    np.testing.assert_array_equal(raw.get_data(), clean)
    # off: nothing measured, nothing changed
    raw = _raw(clean + _gradient(n, on))
    assert artifacts.correct_gradient(raw, on, "off").method == "none"


def _ecg_and_bcg(seconds: float, sfreq: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sfreq)) / sfreq
    beats = np.cumsum(rng.uniform(0.8, 1.0, int(seconds)))  # ~66 bpm with variability
    beats = beats[beats < seconds - 1]
    ecg = np.zeros_like(t)
    bcg = np.zeros_like(t)
    for b in beats:
        ecg += 1e-3 * np.exp(-0.5 * ((t - b) / 0.012) ** 2)  # sharp QRS
        # BCG: biphasic wave ~250 ms after the R-peak, ~60 µV, over before the next beat
        ecg -= 0.2e-3 * np.exp(-0.5 * ((t - b - 0.25) / 0.04) ** 2)
        bcg += 60e-6 * np.sin(2 * np.pi * 4 * (t - b - 0.2)) * np.exp(-0.5 * ((t - b - 0.25) / 0.06) ** 2)
    return ecg, bcg, beats


def test_bcg_pca_obs_removes_heartbeat_locked_artifact(caplog):
    sfreq, seconds = 250.0, 120.0
    ecg, bcg, beats = _ecg_and_bcg(seconds, sfreq)
    clean = _eeg(seconds, sfreq, seed=1)
    gains = np.linspace(-1, 1.5, len(CH))[:, None]
    data = np.vstack([clean + gains * bcg, ecg])
    raw = _raw(data, sfreq, ["eeg"] * len(CH) + ["ecg"], CH + ["ECG"])
    found = artifacts.r_peak_times(raw, "ECG")
    # every R-peak found within 20 ms
    assert found.size == beats.size
    assert np.max(np.abs(np.sort(found) - beats)) < 0.02
    report = artifacts.correct_bcg(raw, "auto", path=FILE)
    assert report.method == "PCA-OBS" and report.ecg_channel == "ECG"
    assert 55 < report.heart_rate_bpm < 80
    # heartbeat-locked average (R-peak to +0.6 s), the usual BCG residual measure
    def locked_rms(x):
        idx = np.round(beats[beats < seconds - 1] * sfreq).astype(int)
        return np.sqrt(np.mean(np.mean([x[:, i:i + int(0.6 * sfreq)] for i in idx], axis=0) ** 2))

    before = locked_rms(data[:len(CH)])
    after = locked_rms(raw.get_data(picks="eeg"))
    floor = locked_rms(clean)  # what averaging ~120 beats of clean EEG leaves anyway
    assert after < 0.25 * before and after < 2 * floor, (before, after, floor)
    # on the artifact alone (EEG at 1e-7 of its level) OBS leaves under 5 % of its power
    raw = _raw(np.vstack([1e-7 * clean + gains * bcg, ecg]), sfreq, ["eeg"] * len(CH) + ["ecg"],
               CH + ["ECG"])
    artifacts.correct_bcg(raw, "obs")
    left = np.mean((raw.get_data(picks="eeg") - 1e-7 * clean) ** 2) / np.mean((gains * bcg) ** 2)
    assert left < 0.05, f"BCG power left: {left:.1%}"


def test_bcg_modes_without_ecg(caplog):
    raw = _raw(_eeg(20, 250.0), 250.0)
    with pytest.raises(DataError, match="needs an ECG channel") as exc:
        artifacts.correct_bcg(raw, "obs", path=FILE)
    assert exc.value.code == 65 and FILE in str(exc.value)
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.eeg"):
        assert artifacts.correct_bcg(raw, "auto", path=FILE).method == "none"
    assert "no ECG channel" in caplog.text
    assert artifacts.correct_bcg(raw, "off").method == "none"


def test_sampling_rate_below_twice_h_freq_is_refused():
    with pytest.raises(DataError, match="below twice the requested high cut-off 30") as exc:
        filtering.check_sampling_rate(50.0, 30.0, FILE)
    assert exc.value.code == 65 and exc.value.path == FILE
    filtering.check_sampling_rate(60.0, 30.0, FILE)


def test_resample_bandpass_notch_keep_the_band_and_remove_the_rest():
    sfreq = 1000.0
    t = np.arange(int(30 * sfreq)) / sfreq
    x = (10e-6 * np.sin(2 * np.pi * 10 * t) + 10e-6 * np.sin(2 * np.pi * 50 * t)
         + 10e-6 * np.sin(2 * np.pi * 0.2 * t) + 10e-6 * np.sin(2 * np.pi * 200 * t))
    raw = _raw(np.tile(x, (2, 1)), sfreq, "eeg", ["Cz", "Pz"])
    filtering.resample(raw, 250.0)
    assert raw.info["sfreq"] == 250.0 and raw.n_times == 7500
    info = filtering.bandpass(raw, 1.0, 30.0, line_freq=50.0)
    assert info["Notch"] == [50.0, 100.0]
    y = raw.get_data()[0, 500:-500]
    tt = np.arange(raw.n_times)[500:-500] / 250.0
    amp = {f: 2 * np.abs(np.mean(y * np.exp(-2j * np.pi * f * tt))) for f in (10, 50, 0.2)}
    assert amp[10] == pytest.approx(10e-6, rel=0.02)  # pass band untouched (zero phase FIR)
    assert amp[50] < 0.1e-6 and amp[0.2] < 1e-6
    assert filtering.notch_freqs(None, 250.0) == [] and filtering.notch_freqs(60, 250.0) == [60.0, 120.0]


def test_flat_and_noisy_channels_interpolated_with_positions_else_marked():
    data = _eeg(20, 250.0)
    data[2] = 0.0  # flat
    data[5] *= 50  # noisy
    raw = _raw(data, 250.0)
    raw.set_montage("colin27_1020")  # standard_1020 is deprecated in mne 1.13
    bad = filtering.handle_bad_channels(raw, path=FILE)
    assert bad.flat == ["F3"] and bad.noisy == ["C4"]
    assert bad.interpolated == ["F3", "C4"] and raw.info["bads"] == []
    assert raw.get_data(picks="F3").std() > 1e-6  # now an estimate from its neighbours
    raw = _raw(data, 250.0)  # no positions: marked bad, excluded from the average reference
    bad = filtering.handle_bad_channels(raw)
    assert bad.marked_bad == ["F3", "C4"] and raw.info["bads"] == ["F3", "C4"]
    filtering.average_reference(raw)
    good = raw.get_data(picks="eeg", exclude="bads")
    np.testing.assert_allclose(good.mean(axis=0), 0, atol=1e-18)


def test_beats_at_the_window_edge_are_dropped_before_pca_obs():
    """mne's PCA-OBS crashes on a beat exactly half an RR before the end; we drop such beats."""
    sfreq, n = 250.0, 5000
    rr = 225  # samples; mne's half-window is round(225 / 2) = 112
    idx = np.arange(300, n - 112 + 1, rr)
    idx[-1] = n - 112  # the off-by-one position
    centres = idx / sfreq
    rng = np.random.default_rng(0)
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], sfreq, "eeg")

    def raw():
        return mne.io.RawArray(1e-5 * rng.standard_normal((4, n)), info, verbose="error")

    with pytest.raises(ValueError, match="broadcast"):
        mne.preprocessing.apply_pca_obs(raw(), picks=info.ch_names, qrs_times=centres, copy=False,
                                        verbose=False)
    kept = artifacts.fittable_centres(centres, sfreq, n)
    assert len(kept) == len(centres) - 1 and kept[-1] == centres[-2]
    mne.preprocessing.apply_pca_obs(raw(), picks=info.ch_names, qrs_times=kept, copy=False,
                                    verbose=False)
