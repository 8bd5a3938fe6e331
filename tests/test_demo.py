"""The demo end to end: its complete output validates and pybids finds every expected file.

Runs the whole demo (minutes), so it is marked slow: ``pytest -m slow tests/test_demo.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bids.layout import BIDSLayout

from bids_eeg2fmri.bids.validate import run_validator
from bids_eeg2fmri.cli.demo import main as demo_main

SPACE = "MNI152NLin2009aSym"
SRC = "task-rest_run-1"
# Like fMRIPrep's CI: the exact list of per-participant derivatives the demo must produce.
PAIRED = ["func/{s}_{src}_space-boldref_boldref.nii.gz",
          "func/{s}_{src}_desc-confounds_timeseries.tsv",
          "func/{s}_{src}_from-boldref_to-" + SPACE + "_mode-image_xfm.nii.gz",
          "func/{s}_{src}_space-" + SPACE + "_res-2_desc-preproc_bold.nii.gz",
          "func/{s}_{src}_space-" + SPACE + "_res-2_desc-brain_mask.nii.gz",
          "func/{s}_{src}_space-" + SPACE + "_res-4_desc-model_bold.nii.gz",
          "eeg/{s}_{src}_desc-preproc_eeg.vhdr",
          "eeg/{s}_{src}_desc-stft_spectrogram.h5",
          "eeg/{s}_{src}_desc-bandpower_timeseries.tsv"]
EEG_ONLY = ["eeg/{s}_{src}_desc-preproc_eeg.vhdr",
            "eeg/{s}_{src}_desc-stft_spectrogram.h5",
            "eeg/{s}_{src}_desc-bandpower_timeseries.tsv"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    assert demo_main([str(out)]) == 0
    return out


@pytest.mark.slow
def test_demo_output_is_complete_valid_and_indexed(demo):
    deriv = demo / "derivatives"
    for sub in ("01", "02", "03"):
        for pattern in PAIRED:
            assert (deriv / f"sub-{sub}" / pattern.format(s=f"sub-{sub}", src=SRC)).is_file(), pattern
        assert (deriv / f"sub-{sub}.html").is_file()
    for pattern in EEG_ONLY:
        assert (deriv / "sub-04" / pattern.format(s="sub-04", src=SRC)).is_file(), pattern
    synth = list((deriv / "sub-04" / "func").glob(f"sub-04_{SRC}_space-{SPACE}_res-*_desc-synth_bold.nii.gz"))
    assert len(synth) == 1
    assert (deriv / "group.html").is_file()
    assert list((deriv / "group").glob("direction-eeg2fmri_model-*_desc-cv_metrics.tsv"))
    assert list((deriv / "group").glob("direction-fmri2eeg_model-*_desc-cv_metrics.tsv"))
    assert list((deriv / "models").glob("*/*/model.safetensors"))
    assert (deriv / "logs" / "CITATION.md").is_file()

    result = run_validator(deriv)
    assert result.ok, result.summary(10)

    layout = BIDSLayout(deriv, validate=False, config=["bids", "derivatives"])
    preproc = layout.get(suffix="bold", desc="preproc", space=SPACE, extension=".nii.gz")
    assert sorted(f.entities["subject"] for f in preproc) == ["01", "02", "03"]
    assert all(f.entities["res"] == "2" and f.entities["task"] == "rest" for f in preproc)
    synth_files = layout.get(suffix="bold", desc="synth", extension=".nii.gz")
    assert [f.entities["subject"] for f in synth_files] == ["04"]
    spectra = layout.get(suffix="spectrogram", desc="stft", extension=".h5")
    assert sorted(f.entities["subject"] for f in spectra) == ["01", "02", "03", "04"]


def _demo_scores(demo: Path):
    import pandas as pd

    table = pd.concat([pd.read_csv(f, sep="\t", na_values="n/a") for f in
                       sorted((demo / "derivatives" / "group").glob("*_desc-cv_metrics.tsv"))])
    return table.groupby(["direction", "model"])[
        ["mse", "baseline_mean_mse", "baseline_subject_mse", "r_driven"]].mean()


@pytest.mark.slow
def test_demo_models_beat_both_baselines(demo):
    """Every model shown beats the training-mean and subject-mean baselines in MSE (fold means)."""
    means = _demo_scores(demo)
    assert len(means) == 4, means
    for (direction, model), m in means.iterrows():
        assert m.mse < m.baseline_mean_mse and m.mse < m.baseline_subject_mse, (direction, model)


@pytest.mark.slow
def test_demo_deep_models_reach_most_of_ridge(demo):
    """Each deep model reaches at least 0.6 × ridge's r on the simulated sources' targets in its
    direction (fold means)."""
    means = _demo_scores(demo)
    for (direction, model), m in means.iterrows():
        if model != "ridge":
            ridge = means.loc[(direction, "ridge"), "r_driven"]
            assert m.r_driven >= 0.6 * ridge, (direction, model, m.r_driven, ridge)
