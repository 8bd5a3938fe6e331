"""Model-card content: identity of the training data, Hugging Face sections, run names."""

from __future__ import annotations

import json

import numpy as np

from bids_eeg2fmri.data.windows import RunArrays
from bids_eeg2fmri.group import card as C


def test_dataset_identity_reads_description_and_detects_simulation(tmp_path):
    (tmp_path / "dataset_description.json").write_text(json.dumps(
        {"Name": "Real EEG-fMRI", "BIDSVersion": "1.10.0", "DatasetDOI": "doi:10.1/x",
         "License": "CC0"}))
    ident = C.dataset_identity(tmp_path)
    assert ident == {"Name": "Real EEG-fMRI", "BIDSVersion": "1.10.0", "DatasetDOI": "doi:10.1/x",
                     "License": "CC0", "Simulated": False}
    (tmp_path / "derivatives" / "simulation").mkdir(parents=True)
    assert C.dataset_identity(tmp_path)["Simulated"] is True
    assert C.dataset_identity(None) == {"Simulated": False}


def test_card_sections_say_simulated_and_carry_baselines(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    cv = {"Metrics": {"r": {"Mean": 0.3}, "baseline_mean_mse": {"Mean": 1.0}}}
    data = {"Subjects": ["01"], "Runs": ["sub-01_task-rest_run-1"], "NumberOfSamples": 10}
    sim = C._card_sections("eeg2fmri", data, cv, {"Name": "sim", "Simulated": True})
    real = C._card_sections("fmri2eeg", data, cv, {"Name": "real", "Simulated": False})
    assert sim["Date"] == "2023-11-14" and sim["License"] == C.LICENSE
    assert "simulated" in sim["Limitations"][0].lower()
    assert not any("simulated" in x.lower() for x in real["Limitations"])
    assert sim["TrainingData"]["Dataset"]["Name"] == "sim" and sim["TrainingData"]["Simulated"]
    assert sim["Evaluation"]["ModelAndBaselines"] is cv
    assert "BOLD from the EEG" in sim["IntendedUse"] and "EEG spectrogram" in real["IntendedUse"]


def test_run_key_is_the_bids_name():
    eeg = np.zeros((4, 1, 1, 1), np.float32)
    bold = np.zeros((4, 2), np.float32)
    assert RunArrays(eeg=eeg, bold=bold, subject="01", run="task-rest_run-1").key == \
        "sub-01_task-rest_run-1"
    assert RunArrays(eeg=eeg, bold=bold, subject="01", run="2").key == "sub-01_run-2"
