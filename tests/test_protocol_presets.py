"""``--protocol`` at the participant level: the papers' EEG features, recorded and checked."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from test_eeg_workflow import eeglab_bids, run_eeg_workflow  # noqa: F401  (fixture)

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.eeg.pipeline import spectral_features, write_spectrogram_h5
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.evaluation.participant_check import (mismatches, participant_warnings,
                                                        protocol_record)
from bids_eeg2fmri.evaluation.protocols import PROTOCOLS

TR, SFREQ, N_CH = 2.16, 250.0, 64  # NODDI (Calhas' dataset 01): 64 channels at 250 Hz, TR 2.16 s


def _noddi_like(n_volumes: int = 14, seed: int = 0) -> tuple[mne.io.RawArray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(round((n_volumes + 1) * TR * SFREQ))
    info = mne.create_info([f"E{i}" for i in range(N_CH)], SFREQ, "eeg")
    raw = mne.io.RawArray(rng.normal(scale=1e-5, size=(N_CH, n)), info, verbose=False)
    return raw, np.arange(n_volumes) * TR


def test_calhas_preset_gives_134_frequencies_by_10_frames_on_a_noddi_layout():
    config = Config.from_sources({"protocol": "calhas2023"})
    raw, onsets = _noddi_like()
    res = spectral_features(raw, onsets, TR, config.eeg)
    # The first 9 volumes lack the 9 TRs of context before them; every other one is 64 × 134 × 10.
    assert res.spectrogram.shape == (len(onsets) - 9, N_CH, 134, 10)
    np.testing.assert_allclose(res.frequencies[[0, -1]], np.array([1, 134]) * SFREQ / 540)
    # Calhas' STFT: |FFT| of each untapered TR of samples, DC bin dropped, f < fs/4 (the scale
    # differs by the frame length only: scipy's 'spectrum' scaling divides by the taper's sum).
    data = raw.get_data() * 1e6
    v, ch, frame = 3, 17, 4  # volume 3 of the output is BOLD volume 12; its frame 4 is TR 7
    start = int(round((res.spec_volumes[v] - 9 + frame) * TR * SFREQ))
    fft = np.abs(np.fft.fft(data[ch, start:start + 540]))[1:135]
    np.testing.assert_allclose(res.spectrogram[v, ch, :, frame] * 540, fft, rtol=1e-4)
    # The same data without the preset: 1 s Hann frames up to 30 Hz — a different input.
    default = spectral_features(raw, onsets, TR, Config().eeg)
    assert default.spectrogram.shape[2:] != (134, 10)


def test_preset_fills_only_what_the_user_left_at_its_default(tmp_path):
    calhas = Config.from_sources({"protocol": "calhas2023", "stft_scale": "log-power"})
    assert calhas.eeg.stft_scale == "log-power"  # given on the command line: kept
    assert (calhas.eeg.stft_window_trs, calhas.eeg.stft_context, calhas.eeg.stft_taper) == \
        (1.0, 9, "boxcar")
    toml = tmp_path / "c.toml"
    toml.write_text('[eeg]\nstft_context = 4\n[group]\nprotocol = "calhas2023"\n')
    assert Config.from_sources(config_file=toml).eeg.stft_context == 4  # TOML: kept
    bruno = Config.from_sources({"protocol": "bruno2025"}).eeg
    assert (bruno.eeg_sfreq, bruno.eeg_l_freq, bruno.eeg_h_freq) == (1000.0, 1.0, 30.0)
    for name in ("bricman2021", "poster"):  # no participant-level parts
        assert PROTOCOLS[name]["participant"] == {}
        cfg = Config.from_sources({"protocol": name, "analysis_level": "participant"})
        assert cfg.eeg == Config().eeg
    with pytest.raises(UsageError, match="leaky"):  # the group level still refuses it
        Config.from_sources({"protocol": "bricman2021", "analysis_level": "group"})
    with pytest.raises(UsageError, match="stft_fmax"):
        Config.from_sources({"stft_fmax": 200.0})
    with pytest.raises(UsageError, match="stft_fmin"):
        Config.from_sources({"stft_fmin": 40.0})  # above the 30 Hz top of the default band
    with pytest.raises(UsageError, match="stft_window_trs"):
        Config.from_sources({"stft_window_trs": 2.0})  # a 1-TR segment holds no 2-TR frame


def _sidecar(config: Config, tmp_path) -> dict:
    raw, onsets = _noddi_like()
    res = spectral_features(raw, onsets, TR, config.eeg)
    meta = write_spectrogram_h5(tmp_path / "s.h5", res, config.eeg.stft_scale)
    meta["Filter"] = {"HighPass": config.eeg.eeg_l_freq, "LowPass": config.eeg.eeg_h_freq}
    return meta


def test_group_warns_when_derivatives_lack_the_protocols_participant_settings(tmp_path):
    made = _sidecar(Config.from_sources({"protocol": "calhas2023"}), tmp_path)
    made["Protocol"] = protocol_record("calhas2023")
    assert mismatches("calhas2023", made) == []
    plain = _sidecar(Config(), tmp_path)
    diff = mismatches("calhas2023", plain)
    assert any(d.startswith("stft_context 0 (protocol: 9)") for d in diff)
    assert any(d.startswith("stft_taper hann") for d in diff)
    warnings = participant_warnings("calhas2023", [("sub-01_run-1", made),
                                                   ("sub-02_run-1", plain),
                                                   ("sub-03_run-1", plain)])
    assert len(warnings) == 1 and warnings[0].startswith("2 run(s) (e.g. sub-02_run-1)")
    assert participant_warnings("poster", [("sub-02_run-1", plain)]) == []
    assert participant_warnings("", [("sub-02_run-1", plain)]) == []
    assert mismatches("calhas2023", {}) and "not recorded" in mismatches("calhas2023", {})[0]


def test_participant_workflow_records_the_protocol_in_the_sidecar(eeglab_bids, tmp_path):  # noqa: F811
    import json

    import h5py

    out = run_eeg_workflow(eeglab_bids, tmp_path, protocol="calhas2023")
    stem = out / "sub-01" / "eeg" / "sub-01_task-rest_desc-stft_spectrogram"
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["Protocol"]["Name"] == "calhas2023"
    assert meta["STFT"]["WindowTRs"] == 1.0 and meta["STFT"]["FramesPerVolume"] == 10
    assert mismatches("calhas2023", meta) == []
    with h5py.File(stem.with_suffix(".h5")) as f:
        # TR 2 s at 250 Hz: 500-sample frames, bins 1 … ⌊500/4⌋ − 1 = 124 (f < fs/4), 10 frames.
        assert f["spectrogram"].shape[2:] == (124, 10)
