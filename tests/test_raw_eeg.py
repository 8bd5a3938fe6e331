"""``--eeg-features raw`` (Bricman & Borst 2021): cleaned EEG cut per volume, and the models that
read it (Siamese MLP, 1-D CNN, transformer with sinusoidal positions)."""

from __future__ import annotations

import _torch_threads  # noqa: F401
import mne
import numpy as np
import pytest
import torch

from bids_eeg2fmri.data.raw_eeg import raw_runs, segment_volumes
from bids_eeg2fmri.data.windows import DataSpec, RunArrays, WindowSpec
from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.models import registry
from bids_eeg2fmri.models.base import ModelShape
from bids_eeg2fmri.training import TrainConfig, cross_validate
from raw_sim import simulate_raw


def test_segments_are_band_limited_and_cut_at_the_onsets():
    sfreq, tr = 250.0, 2.0
    t = np.arange(int(60 * sfreq)) / sfreq
    alpha, line = np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 50 * t)
    onsets = np.array([1.0, 3.0, 5.0, 59.0])  # the last runs past the end
    segs, complete = segment_volumes(np.stack([alpha + line, 2 * alpha]), sfreq, onsets, tr,
                                     band=(1, 30), out_sfreq=64)
    assert segs.shape == (4, 2, 1, 128) and complete.tolist() == [True, True, True, False]
    # 50 Hz is gone, 10 Hz kept, and segment i starts at its onset's phase
    t64 = onsets[:3, None] + np.arange(128)[None] / 64
    assert np.abs(segs[:3, 0, 0] - np.sin(2 * np.pi * 10 * t64)).max() < 0.05
    assert np.allclose(segs[:3, 1, 0], 2 * segs[:3, 0, 0], atol=0.05)
    assert not segs[3].any()
    with pytest.raises(DataError, match="below half the raw sampling rate"):
        segment_volumes(alpha[None], sfreq, onsets, tr, band=(1, 40), out_sfreq=64)


def test_raw_runs_read_the_cleaned_eeg_beside_the_spectrogram(tmp_path):
    import h5py

    sfreq, tr, n_vol = 250.0, 2.0, 12
    info = mne.create_info(["Fz", "Cz", "Pz"], sfreq, "eeg")
    rng = np.random.default_rng(0)
    raw = mne.io.RawArray(rng.normal(size=(3, int(30 * sfreq))) * 1e-5, info, verbose=False)
    stem = tmp_path / "sub-01_task-rest_run-1"
    raw.save(f"{stem}_desc-preproc_eeg.fif", verbose=False)
    # Volumes 0, 1 were discarded dummies; EEG exists for original volumes 0..13, onset 1 s + 2 s i.
    with h5py.File(f"{stem}_desc-stft_spectrogram.h5", "w") as fh:
        fh["volume_onsets"] = 1.0 + tr * np.arange(14)
    valid = np.ones(n_vol, bool)
    valid[5] = False  # say the spectrogram has no row for volume 5 (an old onset is dropped)
    run = RunArrays(eeg=np.zeros((n_vol, 2, 3, 1)), bold=np.zeros((n_vol, 4)), subject="01",
                    eeg_valid=valid)
    spec = DataSpec(["Pz", "Fz"], [5, 10, 20], 1, tr, "regions", 4)
    (out,), rspec = raw_runs([run], spec, [tmp_path / "sub-01_task-rest_run-1_desc-stft_spectrogram.h5"],
                             band=(1, 20), out_sfreq=50)
    assert out.eeg.shape == (12, 2, 1, 100) and rspec.eeg_shape == (2, 1, 100)
    assert rspec.eeg_raw == {"band": [1.0, 20.0], "sfreq": 50.0} and rspec.eeg_bands is None
    assert out.eeg_valid.tolist() == valid.tolist() and not out.eeg[5].any()
    # Volume 11 is the file's last onset (27 s): channel Fz (second) of the filtered record
    ref = mne.filter.resample(mne.filter.filter_data(raw.get_data(picks=["Fz"]), sfreq, 1, 20,
                                                     verbose=False), up=50, down=250,
                              method="polyphase", verbose=False)
    assert np.allclose(out.eeg[11, 1, 0], ref[0, 27 * 50:27 * 50 + 100] * 1e6, atol=1e-3)
    with pytest.raises(DataError, match="raw EEG"):
        spec.check_compatible(rspec)
    with pytest.raises(DataError, match="lacks channel"):
        raw_runs([run], DataSpec(["Oz"], [5], 1, tr, "regions", 4),
                 [tmp_path / "sub-01_task-rest_run-1_desc-stft_spectrogram.h5"])


@pytest.mark.parametrize("name,hp,attr", [("mlp", {}, "siamese"), ("cnn", {}, "one_d"),
                                           ("transformer", {"positions": "sinusoidal"}, None)])
def test_raw_input_selects_the_papers_variants(name, hp, attr):
    raw = ModelShape(window=3, n_channels=4, n_freqs=1, n_frames=32, n_targets=5)
    spectro = ModelShape(window=3, n_channels=4, n_freqs=6, n_frames=2, n_targets=5)
    model = registry.build(name, raw, hp)
    assert model(torch.randn(2, 3, 4, 1, 32)).shape == (2, 5)
    if attr:
        assert getattr(model, attr) and not getattr(registry.build(name, spectro), attr)
    else:  # fixed positions are buffers, not trained
        names = {n for n, _ in model.named_parameters()}
        assert "channel_pos" not in names and "channel_pos" in dict(model.named_buffers())
        assert "channel_pos" in {n for n, _ in registry.build(name, raw).named_parameters()}


@pytest.mark.parametrize("name,hp,epochs", [
    ("mlp", {}, 20), ("cnn", {}, 20),
    # The attention model needs longer: at 20 epochs (patience 6) it stops at the baselines' level.
    pytest.param("transformer", {"positions": "sinusoidal"}, 40, marks=pytest.mark.slow)])
def test_raw_models_beat_the_training_mean_on_simulated_raw_eeg(name, hp, epochs):
    runs, spec, _ = simulate_raw(n_subjects=4, n_volumes=120, target="regions", seed=0)
    res = cross_validate(runs, spec, [name], regime="split", window=WindowSpec(window=8),
                         train_config=TrainConfig(epochs=epochs, patience=max(6, epochs // 4)),
                         hparams={name: hp})
    row = res.table.iloc[0]
    assert row.model_mse < row.train_mean_mse and row.model_mse < row.subject_mean_mse, row
