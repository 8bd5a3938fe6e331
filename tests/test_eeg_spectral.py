"""Per-TR STFT and band power against independent scipy computations and known sinusoids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from bids_eeg2fmri.eeg import spectral

SFREQ = 250.0
TR = 2.0


def _noise(n_ch: int, seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_ch, int(seconds * SFREQ))) * 10e-6


def test_segments_follow_onsets_and_drop_incomplete_volumes():
    data = np.arange(3 * 2500, dtype=float).reshape(3, 2500)  # 10 s at 250 Hz
    onsets = [0.5, 2.5, 4.5, 6.5, 8.5]
    seg = spectral.volume_segments(data, SFREQ, onsets, TR)
    # the last volume would need samples up to 10.5 s: dropped, the rest kept
    assert list(seg.volume_indices) == [0, 1, 2, 3] and seg.dropped == [4]
    assert seg.data.shape == (4, 3, 500)
    np.testing.assert_array_equal(seg.data[1, 2], data[2, 625:1125])
    ctx = spectral.volume_segments(data, SFREQ, onsets, TR, context=1)
    # one TR of context: volume 0 has no preceding TR in the recording
    assert list(ctx.volume_indices) == [1, 2, 3] and ctx.dropped == [0, 4]
    np.testing.assert_array_equal(ctx.data[0, 0], data[0, 125:1125])
    assert ctx.start_offset == pytest.approx(2.0)


@pytest.mark.parametrize("taper,window,overlap", [("hann", 1.0, 0.5), ("hamming", 0.4, 0.75)])
def test_stft_equals_scipy_to_1e6(taper, window, overlap):
    x = _noise(4, 10)
    seg = spectral.volume_segments(x, SFREQ, np.arange(0, 8, TR), TR)
    spec, freqs, times = spectral.spectrogram(seg.data, SFREQ, window=window, overlap=overlap,
                                              taper=taper, fmax=30.0, scale="magnitude")
    nperseg = int(window * SFREQ)
    for v in range(seg.data.shape[0]):
        f_ref, t_ref, z_ref = signal.stft(seg.data[v] * 1e6, fs=SFREQ, window=taper,
                                          nperseg=nperseg, noverlap=int(overlap * nperseg),
                                          boundary=None, padded=False, detrend=False)
        keep = f_ref <= 30.0
        np.testing.assert_allclose(freqs, f_ref[keep])
        np.testing.assert_allclose(times, t_ref)
        ref = np.abs(z_ref[:, keep, :])
        assert spec[v].shape == ref.shape
        # float32 storage: relative error ~6e-8, well inside the 1e-6 requirement
        np.testing.assert_allclose(spec[v], ref, rtol=1e-6, atol=1e-6 * ref.max())
    logp, _, _ = spectral.spectrogram(seg.data, SFREQ, window=window, overlap=overlap,
                                      taper=taper, fmax=30.0, scale="log-power")
    np.testing.assert_allclose(logp, 10 * np.log10(spec.astype(float) ** 2), rtol=1e-5, atol=1e-4)


def test_stft_frequency_axis_stops_at_h_freq_and_finds_a_sinusoid():
    t = np.arange(int(20 * SFREQ)) / SFREQ
    x = np.vstack([20e-6 * np.sin(2 * np.pi * 10 * t), 20e-6 * np.sin(2 * np.pi * 21 * t)])
    seg = spectral.volume_segments(x, SFREQ, np.arange(0, 18, TR), TR)
    spec, freqs, _ = spectral.spectrogram(seg.data, SFREQ, fmax=30, scale="magnitude")
    assert freqs[-1] == 30.0 and freqs[0] == 0.0
    assert freqs[spec[:, 0].mean(axis=(0, 2)).argmax()] == 10.0
    assert freqs[spec[:, 1].mean(axis=(0, 2)).argmax()] == 21.0
    # Hann 'spectrum' scaling: amplitude A sinusoid on a bin centre reads A/2 in µV
    assert spec[:, 0, 10].mean() == pytest.approx(10.0, rel=1e-3)


def test_band_power_equals_scipy_welch_and_sinusoid_power():
    x = _noise(3, 12, seed=1) * 0.1  # 1 µV white noise under a 30 µV sinusoid
    t = np.arange(x.shape[1]) / SFREQ
    x[0] += 30e-6 * np.sin(2 * np.pi * 10 * t)  # alpha power A²/2 = 450 µV²
    seg = spectral.volume_segments(x, SFREQ, np.arange(0, 10, TR), TR)
    bands = {"delta": [1, 4], "theta": [4, 8], "alpha": [8, 13], "beta": [13, 30]}
    cols, table = spectral.bandpower_table(seg.data, SFREQ, ["Fz", "Cz", "Pz"], bands)
    assert cols[:5] == ["Fz_delta", "Fz_theta", "Fz_alpha", "Fz_beta", "Cz_delta"]
    f, p = signal.welch(seg.data * 1e6, fs=SFREQ, window="hann", nperseg=250, noverlap=125,
                        detrend=False, axis=-1)
    for b, (lo, hi) in enumerate(bands.values()):
        sel = (f >= lo) & (f < hi)
        ref = p[..., sel].sum(axis=-1) * (f[1] - f[0])
        np.testing.assert_allclose(table[:, b::4], ref, rtol=1e-9)
    # the sinusoid's power comes out of the alpha band: 450 µV² plus a little noise power
    alpha = table[:, 2]
    assert np.all(np.abs(alpha - 450.0) < 0.03 * 450.0)


def test_band_without_bins_and_too_short_segments_are_refused():
    psd, freqs = spectral.welch_psd(_noise(1, 4), SFREQ, window=1.0)
    with pytest.raises(ValueError, match="holds no frequency bin"):
        spectral.band_power(psd, freqs, {"narrow": [10.2, 10.6]})
    with pytest.raises(ValueError, match="shorter than the STFT window"):
        spectral.stft_segments(_noise(1, 0.5), SFREQ, window=1.0)
    with pytest.raises(ValueError, match="scale"):
        spectral.spectrogram(_noise(1, 2)[None], SFREQ, scale="dB")
