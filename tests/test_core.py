"""The one learning core trains, scores, saves and fine-tunes both directions alike."""

from __future__ import annotations

import numpy as np
import pytest

import _torch_threads  # noqa: F401  (one thread)
import eeg2fmri_sim
import fmri2eeg_sim

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.data.windows import SequenceSpec, WindowSpec, index_samples
from bids_eeg2fmri.training import (EEG2FMRI, FMRI2EEG, TrainConfig, cross_validate, fit,
                                    get_direction, load_model)
from bids_eeg2fmri.training.finetune import finetune_settings, finetune_subject

CASES = {
    "eeg2fmri": (lambda: eeg2fmri_sim.simulate(n_subjects=3, n_volumes=80, target="regions",
                                               seed=3)[:2],
                 WindowSpec(window=4), ("ridge", "mlp")),
    "fmri2eeg": (lambda: fmri2eeg_sim.simulate(n_subjects=3, n_volumes=90, seed=3)[:2],
                 SequenceSpec(window=10, horizon=2), ("ridge", "rnn-seq2seq")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_both_directions_train_through_the_one_core(name, tmp_path):
    make, window, models = CASES[name]
    runs, spec = make()
    d = get_direction(name)
    cfg = TrainConfig(epochs=2, patience=0, progress=False)
    cv = cross_validate(runs, spec, models, direction=d, regime="loso", window=window,
                        train_config=cfg, out_dir=tmp_path / "cv")
    assert len(cv.table) == len(models) * 3 and (tmp_path / "cv" / "cv_metrics.tsv").is_file()
    for key in d.headline.values():
        assert np.isfinite(cv.table[key]).all(), key
    ridge = cv.summary().loc["ridge"]
    # The simulators couple input and target: ridge predicts better than the training mean.
    assert ridge[d.headline["mse"]] < ridge[d.headline["train_mean_mse"]], ridge
    ev = cv.evaluations[("ridge", cv.folds[0].name)]
    subjects = ev.samples["subject"].to_numpy()
    for s in np.unique(subjects):
        # The subject-mean baseline is each test subject's own mean.
        np.testing.assert_allclose(ev.baselines["subject_mean"][subjects == s][0],
                                   ev.true[subjects == s].mean(axis=0), rtol=1e-5, atol=1e-6)
    fitted_path = tmp_path / "cv" / models[1] / cv.folds[0].name / "model.safetensors"
    loaded = load_model(fitted_path)
    assert loaded.direction is d and loaded.window == window
    test = cv.folds[0].test
    again = loaded.predict(runs, samples=cv.samples.iloc[test])
    fold_ev = cv.evaluations[(models[1], cv.folds[0].name)]
    np.testing.assert_allclose(again, fold_ev.pred, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("direction", [EEG2FMRI, FMRI2EEG])
def test_fine_tuning_runs_for_either_direction(direction):
    make, window, _ = CASES[direction.name]
    runs, spec = make()
    cfg = TrainConfig(epochs=2, patience=0, progress=False)
    base = fit(runs[:2], spec, "ridge", direction=direction, window=window, train_config=cfg)
    samples = index_samples(runs, window)
    rows = np.flatnonzero(samples["subject"].to_numpy() == runs[2].subject)
    tuned, ft, te, scores = finetune_subject(base, runs, samples, rows,
                                             finetune_settings(cfg, "ridge", direction))
    assert set(scores) == {"base", "finetuned"} and len(ft) and len(te)
    assert samples["volume"].to_numpy()[te].min() > samples["volume"].to_numpy()[ft].max()
    assert tuned.direction is direction and tuned.provenance["finetuned_from"] == ["01", "02"]


def test_training_options_come_from_the_group_section_only():
    config = Config()
    config.group.epochs, config.group.batch_size = 7, 5
    built = TrainConfig.from_config(config)
    assert (built.epochs, built.batch_size, built.progress) == (7, 5, False)
    default = TrainConfig()
    group = Config().group
    assert (default.epochs, default.batch_size, default.weight_decay) == (
        group.epochs, group.batch_size, group.weight_decay)
    tuned = finetune_settings(built, "rnn-seq2seq", "fmri2eeg")
    assert tuned.epochs == 5 and tuned.patience == 0 and tuned.lr > 0
