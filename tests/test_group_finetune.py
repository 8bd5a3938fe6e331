"""Group level, fMRI→EEG: base vs fine-tuned (``--finetune``) and sliding vs segment models
(``--reconstruct segments``) per held-out participant (``group/finetune.py``)."""

from __future__ import annotations

import dataclasses

import pytest

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import DRIVEN_CELLS, simulate

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.data.windows import SequenceSpec
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.group import finetune as FT


def _config(**group) -> Config:
    c = Config()
    return dataclasses.replace(c, group=dataclasses.replace(c.group, cv_folds=3, epochs=5, **group))


def test_both_comparisons_score_the_same_samples_per_stage():
    runs, spec, info = simulate(n_subjects=3, n_volumes=240, seed=2)
    config = _config(finetune=True, reconstruct="segments", segments=3)
    assert FT.wanted(config)
    table = FT.finetune_comparison(config, runs, spec, ["ridge"], SequenceSpec(window=12, horizon=3),
                                   {"bands": info["bands"], "groups": info["groups"]},
                                   [f"r_{c}" for c in DRIVEN_CELLS])
    assert set(table["comparison"]) == {"finetune", "segments"}
    assert sorted(table["subject"].unique()) == ["01", "02", "03"]
    n = table.groupby(["subject", "comparison", "stage"])["n_test"].sum().unstack("stage")
    assert (n.loc[(slice(None), "finetune"), "base"] == n.loc[(slice(None), "finetune"),
                                                               "finetuned"]).all()
    assert (n.loc[(slice(None), "segments"), "sliding"] == n.loc[(slice(None), "segments"),
                                                                 "segments"]).all()
    assert table["r_driven"].notna().all()
    wide = FT.side_by_side(table)
    assert {"mse", "r_overall", "r_driven"} <= set(wide.columns) and len(wide) == 4


def test_off_by_default_and_refused_on_voxel_components():
    assert not FT.wanted(Config())
    assert not FT.wanted(_config(finetune=True, direction="eeg2fmri"))
    with pytest.raises(UsageError, match="fmri-input regions"):
        FT.wanted(_config(reconstruct="segments", fmri_input="pca"))
