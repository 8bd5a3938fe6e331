"""5-fold CV over 5 simulated subjects: rnn-seq2seq vs ridge vs the noise ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import DRIVEN_CELLS, UNDRIVEN_CELLS, simulate

from bids_eeg2fmri.data.windows import SequenceSpec
from bids_eeg2fmri.training import TrainConfig
from bids_eeg2fmri.training import cross_validate

# Small sizes for one CPU core: 20-TR windows (the default is 50), 15 epochs.
WINDOW = SequenceSpec(window=20, horizon=5)
CONFIG = TrainConfig(epochs=15, lr=5e-3, weight_decay=0.5, batch_size=32, progress=False)


@pytest.fixture(scope="module")
def cv():
    runs, spec, info = simulate(n_subjects=5, n_volumes=200, seed=0)
    return cross_validate(runs, spec, ["ridge", "rnn-seq2seq"], direction="fmri2eeg",
                          regime="kfold", k=5,
                          window=WINDOW, train_config=CONFIG, early_stopping=False,
                          bands=info["bands"], groups=info["groups"])


def test_five_folds_hold_out_each_subject_once(cv):
    assert len(cv.folds) == 5
    tested = sorted(cv.per_subject[cv.per_subject.model == "ridge"]["subject"])
    assert tested == ["01", "02", "03", "04", "05"]


def test_rnn_matches_ridge_and_reaches_ceiling(cv):
    t = cv.table
    for cell in DRIVEN_CELLS:
        ridge = t[t.model == "ridge"][f"r_{cell}"].to_numpy()
        rnn = t[t.model == "rnn-seq2seq"][f"r_{cell}"].to_numpy()
        ceiling = t[t.model == "rnn-seq2seq"][f"ceiling_{cell}"].mean()
        # Beats ridge or lies within its error bar: the 95 % confidence interval of the ridge's
        # mean over the 5 folds (t distribution, 4 degrees of freedom).
        err = stats.t.ppf(0.975, len(ridge) - 1) * ridge.std(ddof=1) / np.sqrt(len(ridge))
        assert rnn.mean() >= ridge.mean() - err, (cell, rnn.mean(), ridge.mean(), err)
        assert rnn.mean() >= 0.7 * ceiling, (cell, rnn.mean(), ceiling)
        assert ridge.mean() >= 0.7 * ceiling


def test_non_driven_bands_stay_near_zero(cv):
    s = cv.summary()
    for model in ("ridge", "rnn-seq2seq"):
        for cell in UNDRIVEN_CELLS:
            assert abs(s.loc[model, f"r_{cell}"]) < 0.15, (model, cell, s.loc[model, f"r_{cell}"])
    assert (s["mse"] > 0).all() and (s["r_overall"] > 0.1).all()
