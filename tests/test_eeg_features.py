"""``--eeg-features``: band power for both directions (EEG→fMRI input, fMRI→EEG target with its
noiseless truth), the raw window for EEG→fMRI (``group/features.py``)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.data.windows import DataSpec, RunArrays
from bids_eeg2fmri.group.features import apply_eeg_features, direction_config

BANDS = {"alpha": [8.0, 13.0], "beta": [13.0, 30.0]}


def _data(truth: bool) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    eeg = rng.normal(size=(10, 2, 4, 3)).astype(np.float32)
    run = RunArrays(eeg=eeg, bold=np.zeros((10, 3)), subject="01",
                    eeg_truth=eeg * 2 if truth else None)
    spec = DataSpec(["C3", "C4"], [8.0, 10.0, 14.0, 20.0], 3, 2.0, "regions", 3)
    return SimpleNamespace(runs=[run], spec=spec, files=[])


def test_bands_pool_the_input_of_one_direction_and_the_target_of_the_other():
    c = Config()
    config = dataclasses.replace(c, group=dataclasses.replace(c.group, eeg_features="bands"))
    data = {"eeg2fmri": _data(False), "fmri2eeg": _data(True)}
    raw_eeg = data["fmri2eeg"].runs[0].eeg.copy()
    apply_eeg_features(config, data, {"eeg": {"bands": BANDS}})
    for d in data.values():
        assert d.runs[0].eeg.shape == (10, 2, 2, 1) and d.spec.frequencies == [10.5, 21.5]
    run = data["fmri2eeg"].runs[0]
    assert np.allclose(run.eeg[:, :, 0, 0], raw_eeg[:, :, :2].mean(axis=(2, 3)), atol=1e-6)
    assert np.allclose(run.eeg_truth, 2 * run.eeg, atol=1e-5)  # the ceiling's truth pooled alike
    assert data["eeg2fmri"].runs[0].eeg_truth is None


def test_raw_input_trains_on_the_raw_window():
    c = Config()
    raw = dataclasses.replace(c, group=dataclasses.replace(c.group, eeg_features="raw"))
    assert direction_config(raw, "eeg2fmri").group.window_s == 30.0
    assert direction_config(raw, "fmri2eeg").group.window_s == 20.0
    assert direction_config(c, "eeg2fmri") is c
