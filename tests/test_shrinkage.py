"""Validation-calibrated shrinkage: a deep model falls back towards the training mean when the
validation samples say nothing is learnable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _torch_threads  # noqa: F401  (one thread)
import eeg2fmri_sim

from bids_eeg2fmri.data.windows import WindowSpec
from bids_eeg2fmri.training import EEG2FMRI, TrainConfig, cross_validate
from bids_eeg2fmri.training.shrinkage import MIN_SCALE, optimal_scale


def test_optimal_scale_minimises_the_squared_error_within_zero_and_one():
    rng = np.random.default_rng(0)
    p = rng.normal(size=500)
    for true_scale in (-0.5, 0.3, 2.0):
        y = true_scale * p + 0.1 * rng.normal(size=500)
        s = optimal_scale(float(p @ y), float(p @ p))
        grid = np.linspace(0, 1, 201)
        best = grid[np.argmin([((g * p - y) ** 2).sum() for g in grid])]
        assert abs(s - best) <= 0.005, (true_scale, s, best)
    assert optimal_scale(1.0, 0.0) == 1.0


def test_shrinkage_keeps_every_targets_r():
    # Anti-correlated predictions go to the floor, not to a constant: r (scale-invariant) is the
    # network's own, never dropped from the means as an undefined r would be.
    rng = np.random.default_rng(1)
    p = rng.normal(size=(200, 3))
    y = p * np.array([-1.0, 0.2, 3.0]) + rng.normal(size=(200, 3))
    s = optimal_scale((p * y).sum(0), (p * p).sum(0))
    assert s[0] == MIN_SCALE and 0 < s[1] < 1 and s[2] == 1.0
    r = [np.corrcoef(p[:, j] * s[j], y[:, j])[0, 1] for j in range(3)]
    r0 = [np.corrcoef(p[:, j], y[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(r, r0, rtol=1e-12)


def _cv(coupled: bool, shrink: bool, **hparams):
    runs, spec, _ = eeg2fmri_sim.simulate(n_subjects=3, n_volumes=120, target="regions",
                                          coupled=coupled, seed=5)
    # No weight decay: only early stopping and the shrinkage stand against over-fitting.
    cfg = TrainConfig(epochs=15, patience=5, progress=False, shrink=shrink, weight_decay=0.0)
    torch.manual_seed(0)
    cv = cross_validate(runs, spec, ["mlp"], direction=EEG2FMRI, regime="loso",
                        window=WindowSpec(window=4), train_config=cfg, hparams={"mlp": hparams})
    head = EEG2FMRI.headline
    summary = cv.summary().loc["mlp"]
    return summary[head["mse"]], summary[head["train_mean_mse"]], cv


def test_mlp_without_coupling_is_not_worse_than_the_training_mean():
    # A wide network without dropout fits the training participants' noise: unshrunk, its
    # held-out error is above the training mean's (so the assertions below can fail) ...
    overfit = {"hidden": 256, "dropout": 0.0}
    raw_mse, mean_mse, _ = _cv(coupled=False, shrink=False, **overfit)
    assert raw_mse > mean_mse * 1.02, (raw_mse, mean_mse)
    # ... shrunk by its validation samples, where nothing is learnable, it falls back towards the
    # mean: most of the excess goes. Not all of it: per-target scales estimated on ~70
    # autocorrelated validation samples keep some chance co-variation.
    mse, _, _ = _cv(coupled=False, shrink=True, **overfit)
    assert mse - mean_mse <= 0.5 * (raw_mse - mean_mse), (mse, raw_mse, mean_mse)
    assert mse <= mean_mse * 1.015, (mse, mean_mse)


def test_shrinkage_keeps_a_learnable_coupling():
    mse, mean_mse, _ = _cv(coupled=True, shrink=True, hidden=64)
    assert mse < mean_mse * 0.98, (mse, mean_mse)
