"""Band power pooled from the spectrogram (EEG→fMRI ``--eeg-features bands``)."""

from __future__ import annotations

import numpy as np
import pytest

from bids_eeg2fmri.data.bandpool import band_spec, pool_bands, pool_runs
from bids_eeg2fmri.data.windows import DataSpec, RunArrays
from bids_eeg2fmri.errors import DataError

FREQS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
BANDS = {"delta": [1.0, 4.0], "theta": [4.0, 8.0]}


def test_pool_bands_means_bins_and_frames():
    eeg = np.random.default_rng(0).standard_normal((5, 3, len(FREQS), 2)).astype(np.float32)
    out = pool_bands(eeg, FREQS, BANDS)
    assert out.shape == (5, 3, 2, 1)
    np.testing.assert_allclose(out[..., 0, 0], eeg[:, :, 1:4].mean(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(out[..., 1, 0], eeg[:, :, 4:8].mean(axis=(2, 3)), rtol=1e-6)
    with pytest.raises(DataError, match="gamma"):
        pool_bands(eeg, FREQS, {"gamma": [30.0, 45.0]})


def test_band_spec_round_trips_and_guards_new_data():
    spec = DataSpec(["Cz", "Oz", "Pz"], FREQS, 2, 2.0, "regions", 4)
    pooled = band_spec(spec, BANDS)
    assert pooled.frequencies == [2.5, 6.0] and pooled.n_frames == 1
    again = DataSpec.from_dict(pooled.to_dict())
    again.check_compatible(pooled)
    with pytest.raises(DataError, match="bands"):
        pooled.check_compatible(band_spec(spec, {"delta": [1.0, 4.0], "theta": [4.0, 9.0]}))
    finer = DataSpec(["Cz", "Oz", "Pz"], [f / 2 for f in range(20)], 2, 2.0, "regions", 4)
    with pytest.raises(DataError, match="pooled from"):
        pooled.check_compatible(band_spec(finer, BANDS))
    with pytest.raises(DataError, match="full spectrogram"):
        pooled.check_compatible(spec)


def test_pool_runs_keeps_bold_and_masks():
    rng = np.random.default_rng(1)
    run = RunArrays(eeg=rng.standard_normal((6, 3, len(FREQS), 2)).astype(np.float32),
                    bold=rng.standard_normal((6, 4)).astype(np.float32), subject="01",
                    eeg_valid=np.array([True] * 5 + [False]))
    spec = DataSpec(["Cz", "Oz", "Pz"], FREQS, 2, 2.0, "regions", 4)
    (out,), pspec = pool_runs([run], spec, BANDS)
    pspec.check_run(out)
    assert out.eeg.shape == (6, 3, 2, 1) and np.array_equal(out.bold, run.bold)
    assert np.array_equal(out.eeg_valid, run.eeg_valid)
