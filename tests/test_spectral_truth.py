"""Noiseless expected spectrogram of simulated runs (the fMRI→EEG noise ceiling).

One small EEG-only simulated run (20 channels at 500 Hz, 60 volumes of 2.16 s) goes through the
real EEG pipeline; the expected spectrogram built from the ground truth must follow the measured
one in every source's driven cell, and must stop doing so when the truth's time axis is reversed.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from bids_eeg2fmri.config import EEGConfig
from bids_eeg2fmri.eeg.pipeline import clean_eeg, spectral_features, write_spectrogram_h5
from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.simulate import SimulationParams, load_ground_truth, simulate_dataset
from bids_eeg2fmri.simulate.spectral_truth import expected_spectrogram

N_VOL = 60


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    """The simulated run's ground truth and its cleaned EEG (channels 0-19 hold Fz, C3, T7, Oz)."""
    root = tmp_path_factory.mktemp("spectral_truth") / "bids"
    params = SimulationParams(subjects=0, eeg_only_subjects=1, channels=20, sfreq=500.0,
                              volumes=N_VOL, seed=7)
    run = simulate_dataset(root, params).runs[0]
    truth = load_ground_truth(root, run.subject, run.session, run.run, mmap=False)
    res = clean_eeg(run.eeg, EEGConfig(), tr=params.tr, n_volumes=N_VOL)
    return root, truth, res, params.tr


def _write(cleaned, context: int, scale: str):
    root, _, res, tr = cleaned
    feats = spectral_features(res.raw, res.onsets, tr, EEGConfig(stft_context=context,
                                                                 stft_scale=scale))
    h5 = root / f"ctx{context}_{scale}_spectrogram.h5"
    h5.with_suffix(".json").write_text(json.dumps(write_spectrogram_h5(h5, feats, scale)))
    with h5py.File(h5) as fh:
        return h5, fh["spectrogram"][()], fh["frequencies"][()], \
            [c.decode() for c in fh["channels"][()]]


def _cell_r(truth, expected, measured, freqs, channels) -> dict[str, float]:
    """r across volumes of each source's cell (band bins × channel group, mean over frames)."""
    out = {}
    for src in truth["source_names"]:
        lo, hi = truth["source_bands"][src]
        fsel = (freqs >= lo) & (freqs < hi)
        csel = np.isin(channels, truth["channel_groups"][src])
        cells = [s[:, csel][:, :, fsel].mean(axis=(1, 2, 3)) for s in (expected, measured)]
        out[src] = float(np.corrcoef(*cells)[0, 1])
    return out


# measured on seed 7: log-power r = 0.70-0.84 (reversed truth: -0.09 to 0.29); magnitude with
# one TR of context r = 0.967-0.981 (reversed: 0.12-0.23)
@pytest.mark.parametrize("context, scale, low", [(0, "log-power", 0.55), (1, "magnitude", 0.85)])
def test_expected_spectrogram_tracks_measured_and_needs_alignment(cleaned, context, scale, low):
    truth = cleaned[1]
    h5, measured, freqs, channels = _write(cleaned, context, scale)
    expected = expected_spectrogram(h5, truth)
    assert expected.shape == measured.shape and expected.dtype == np.float32
    assert np.isfinite(expected).all()
    r = _cell_r(truth, expected, measured, freqs, channels)
    assert all(low < v < 0.995 for v in r.values()), r
    # the same envelopes played backwards: same power distribution, wrong times
    rev = dict(truth, channel_envelopes=np.asarray(truth["channel_envelopes"])[..., ::-1])
    r_rev = _cell_r(truth, expected_spectrogram(h5, rev), measured, freqs, channels)
    assert all(r[k] - r_rev[k] > 0.35 for k in r), (r, r_rev)
    # 12 Hz lies in no simulated band (alpha [8, 12), beta [13, 30)): a constant per channel
    f12 = expected[:, :, np.flatnonzero(freqs == 12.0)[0]]
    assert np.ptp(f12, axis=(0, 2)).max() == 0.0
    # the expectation is the scale applied to the expected power: for exponentially distributed
    # bin power E[dB] lies 10·γ/ln 10 = 2.51 dB below dB(E power) and E|X| = sqrt(π/4 · E power)
    # = E power^½ / 1.128. Per channel and bin (1-11 Hz, levels spread over 27 dB) measured
    # percentiles 10/50/90: 1.88/2.38/2.93 dB and 1.096/1.123/1.149; a wrong conversion misses that
    drive = (freqs >= 1) & (freqs < 12)
    e, m = expected[:, :, drive].astype(float), measured[:, :, drive].astype(float)
    if scale == "log-power":
        gap, bounds = (e - m).mean(axis=(0, 3)), (1.5, 2.1, 2.8, 3.5)
    else:
        gap, bounds = e.mean(axis=(0, 3)) / m.mean(axis=(0, 3)), (1.05, 1.09, 1.16, 1.2)
    p10, p50, p90 = np.percentile(gap, [10, 50, 90])
    assert bounds[0] < p10 and bounds[1] < p50 < bounds[2] and p90 < bounds[3], (p10, p50, p90)


def test_unknown_channels_constant_and_bad_truth_refused(cleaned):
    truth = cleaned[1]
    h5, measured, _, channels = _write(cleaned, 0, "log-power")
    renamed = dict(truth, eeg_channels=["X" if c == "Oz" else c for c in truth["eeg_channels"]])
    expected = expected_spectrogram(h5, renamed)
    assert np.ptp(expected[:, channels.index("Oz")], axis=(0, 2)).max() == 0.0
    assert np.ptp(expected[:, channels.index("Fz")], axis=(0, 2)).max() > 0.0
    short = dict(truth, channel_envelopes=np.asarray(truth["channel_envelopes"])[:, :-1])
    with pytest.raises(DataError, match="envelopes"):
        expected_spectrogram(h5, short)
    late = dict(truth, volume_onset_samples=np.asarray(truth["volume_onset_samples"]) + 50)
    with pytest.raises(DataError, match="onsets"):
        expected_spectrogram(h5, late)
    with pytest.raises(DataError, match="cannot read"):
        expected_spectrogram(h5.with_name("missing.h5"), truth)
