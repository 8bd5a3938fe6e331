"""Runs recorded with different caps: common channels or spherical-spline interpolation."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest

from bids_eeg2fmri.data import montage as M
from bids_eeg2fmri.errors import DataError, ExitCode


def _cap(n: int = 63) -> list[str]:
    """The first ``n`` EEG names of the standard 10-05 montage in a 10-20-ish order."""
    std = mne.channels.make_standard_montage("colin27_1005").ch_names
    return [c for c in std if c.rstrip("z0123456789h") in ("Fp", "AF", "F", "FC", "C", "CP", "P",
                                                           "PO", "O", "T", "TP", "FT")
            and not c.endswith("h")][:n]


def test_common_channels_of_caps_that_differ_by_six_names(caplog):
    base = _cap(69)
    a, b = base[:63], base[:57] + base[63:69]  # 63 each, six names differ (as in ds002338)
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri"):
        mont = M.plan_montage({"sub-xp201_task-1dNF": a, "sub-xp202_task-1dNF": b}, "common")
    assert mont.channels == base[:57]
    assert mont.dropped == {"sub-xp201_task-1dNF": base[57:63], "sub-xp202_task-1dNF": base[63:69]}
    assert "sub-xp202_task-1dNF: EEG channel(s) " + ", ".join(base[63:69]) + " dropped" in caplog.text
    card = mont.describe()
    assert card["Mode"] == "common" and card["Channels"] == base[:57]
    union = M.plan_montage({"a": a, "b": b}, "interpolate")
    assert union.channels == base[:69] and union.interpolated["a"] == base[63:69]
    with pytest.raises(DataError, match="share 1 EEG channel"):
        M.plan_montage({"a": ["Fz", "Cz"], "b": ["Cz", "Pz"]}, "common")


def _field(names: list[str]) -> np.ndarray:
    """A smooth scalp field (low-order in the head coordinates) at the standard positions."""
    pos = mne.channels.make_standard_montage("colin27_1005").get_positions()["ch_pos"]
    xyz = np.array([pos[c] for c in names])
    return 3.0 + 40 * xyz[:, 0] - 25 * xyz[:, 1] + 60 * xyz[:, 2]


def test_interpolated_channels_follow_a_smooth_field():
    names = _cap(64)
    truth = _field(names)
    # (volumes, channels, freqs, frames) spectrogram whose every bin carries the field
    scale = np.linspace(1, 2, 5 * 3 * 2).reshape(5, 1, 3, 2)
    full = truth[None, :, None, None] * scale
    gone = ["C3", "Pz", "FC6"]
    kept = [c for c in names if c not in gone]
    eeg = full[:, [names.index(c) for c in kept]]
    pos, source = M.channel_positions(names)
    assert source == M.STANDARD and set(pos) == set(names)
    out = M.conform(eeg, kept, names, positions=pos, interpolate=True)
    assert out.shape == full.shape
    np.testing.assert_array_equal(out[:, [names.index(c) for c in kept]], eeg)
    for c in gone:
        i = names.index(c)
        rel = np.abs(out[:, i] - full[:, i]) / np.abs(full[:, i])
        assert rel.max() < 0.05, (c, rel.max())
    # a channel with no position anywhere cannot be interpolated: one line naming it
    with pytest.raises(DataError, match="no position for EEG channel.*Xyz") as exc:
        M.conform(eeg, kept, kept + ["Xyz"], positions=pos, interpolate=True, path="run.h5")
    assert exc.value.code == ExitCode.DATA and "run.h5" in str(exc.value)


def test_positions_from_the_recording_win_over_the_standard(tmp_path):
    names = ["Fz", "Cz", "Pz", "Oz"]
    info = mne.create_info(names, 250.0, "eeg")
    mine = {c: np.array([0.01 * i, 0.02, 0.08]) for i, c in enumerate(names)}
    info.set_montage(mne.channels.make_dig_montage(ch_pos=mine, coord_frame="head"))
    fif = tmp_path / "sub-01_task-rest_desc-preproc_eeg.fif"
    mne.io.RawArray(np.zeros((4, 10)), info, verbose=False).save(fif, verbose=False)
    pos, source = M.channel_positions(names + ["C3"], [fif])
    assert source == f"recordings + {M.STANDARD}"
    np.testing.assert_allclose(pos["Pz"], mine["Pz"], atol=1e-6)
    assert M.preproc_eeg_of(tmp_path / "sub-01_task-rest_desc-stft_spectrogram.h5") == fif


def test_applying_a_model_to_another_cap(caplog):
    model = _cap(20)
    given = model[2:] + ["Oz"]  # lacks two of the model's channels, has one more
    eeg = np.random.default_rng(0).normal(size=(4, len(given), 3, 2))
    common_card = {"Data": {"Montage": {"Mode": "common"}}}
    with pytest.raises(DataError) as exc:
        M.conform_to_model(eeg, given, model, common_card, "sub-09_desc-stft_spectrogram.h5")
    line = exc.value.oneline()
    assert f"lacks 2 channel(s) of the model's montage: {model[0]}, {model[1]}" in line
    assert "\n" not in line and "sub-09_desc-stft_spectrogram.h5" in line
    # a card without a Montage block (older models) refuses the same way
    with pytest.raises(DataError, match="lacks 2 channel"):
        M.conform_to_model(eeg, given, model, {}, "x.h5")
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri"):
        out, chans = M.conform_to_model(eeg, given, model,
                                        {"Data": {"Montage": {"Mode": "interpolate"}}}, "x.h5")
    assert chans == model and out.shape == (4, 20, 3, 2)
    assert f"interpolating EEG channel(s) {model[0]}, {model[1]}" in caplog.text
    np.testing.assert_array_equal(out[:, 2:], eeg[:, :18])
    # the same channels in another order are reordered, never refused
    out, _ = M.conform_to_model(eeg[:, ::-1], given[::-1], given, common_card, "x.h5")
    np.testing.assert_array_equal(out, eeg)
