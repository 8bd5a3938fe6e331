"""Cross-validation regimes, the buffer rule, the shuffled-split refusal and the leak it prevents."""

from __future__ import annotations

import _torch_threads  # noqa: F401
import numpy as np
import pytest

from bids_eeg2fmri import metrics
from bids_eeg2fmri.data.splits import (SHUFFLED_REFUSAL, blocked_in_time, kfold_subjects,
                                       leave_one_subject_out, make_folds, shuffled_within_subject,
                                       subject_split, validation_blocks)
from bids_eeg2fmri.data.windows import WindowSpec, index_samples
from bids_eeg2fmri.errors import UsageError
from eeg2fmri_sim import simulate

WIN = WindowSpec(window=5)
TR = 2.0


@pytest.fixture(scope="module")
def table():
    runs, spec, _ = simulate(n_subjects=5, n_volumes=60, target="regions", n_runs=2)
    return index_samples(runs, WIN)


def test_subject_regimes_keep_subjects_whole(table):
    sub = table["subject"].to_numpy()
    folds = leave_one_subject_out(table)
    assert [f.name for f in folds] == [f"sub-0{i}" for i in range(1, 6)]
    for regime in (folds, kfold_subjects(table, k=3), subject_split(table)):
        for f in regime:
            assert not set(sub[f.train]) & set(sub[f.test])
            assert not set(sub[f.val]) & (set(sub[f.test]) | set(sub[f.train]))
    covered = np.sort(np.concatenate([f.test for f in kfold_subjects(table, k=3)]))
    assert np.array_equal(covered, np.arange(len(table)))
    (split,) = subject_split(table)
    assert [len(set(sub[p])) for p in (split.train, split.val, split.test)] == [3, 1, 1]
    with pytest.raises(UsageError, match="at least 6 subjects"):
        kfold_subjects(table, k=6)


def test_blocked_folds_keep_a_buffer(table):
    buffer = WIN.min_buffer(TR)
    assert buffer == 5 + 10
    folds = blocked_in_time(table, WIN, TR, n_folds=3)
    run, vol = table["run_index"].to_numpy(), table["volume"].to_numpy()
    for f in folds:
        for r in np.unique(run):
            tr_v, te_v = vol[f.train[run[f.train] == r]], vol[f.test[run[f.test] == r]]
            if len(tr_v):
                assert np.abs(tr_v[:, None] - te_v[None, :]).min() > buffer
    assert sorted(np.concatenate([f.test for f in folds])) == list(range(len(table)))
    with pytest.raises(UsageError, match="shorter than the window plus the HRF"):
        blocked_in_time(table, WIN, TR, buffer=buffer - 1)
    train, val = validation_blocks(table, np.arange(len(table)), WIN, TR)
    for r in np.unique(run):
        assert vol[train[run[train] == r]].max() < vol[val[run[val] == r]].min() - buffer


def test_shuffled_split_is_refused_with_the_reason(table):
    for name in ("shuffled", "random"):
        with pytest.raises(UsageError) as err:
            make_folds(table, name, spec=WIN, tr=TR)
        assert err.value.message == SHUFFLED_REFUSAL and "inflates" in SHUFFLED_REFUSAL
    with pytest.raises(UsageError, match="unknown cross-validation regime"):
        make_folds(table, "bogus", spec=WIN, tr=TR)


def _knn_held_out_r(runs, samples, win, folds, k=3):
    """Mean held-out temporal r of a k-nearest-neighbour regressor on the flattened EEG windows.

    A memorising model is the sharpest probe of leakage: it scores only if near-copies of the test
    samples sit in the training set.
    """
    offsets = np.arange(win.window) - win.span() + 1
    x = np.stack([np.asarray(runs[r].eeg)[v + offsets].ravel()
                  for r, v in zip(samples["run_index"], samples["volume"])])
    x = (x - x.mean(0)) / x.std(0)
    y = np.stack([np.asarray(runs[r].bold)[v] for r, v in zip(samples["run_index"], samples["volume"])])
    rs = []
    for f in folds:
        d = ((x[f.test][:, None, :] - x[f.train][None, :, :]) ** 2).sum(-1)
        near = np.argsort(d, axis=1)[:, :k]
        pred = y[f.train][near].mean(axis=1)
        rs.append(metrics.nanmean(metrics.pearson_temporal(pred, y[f.test])))
    return float(np.mean(rs))


def test_shuffled_split_inflates_scores_blocked_split_does_not():
    """On data where EEG carries nothing about BOLD, shuffling volumes leaks; blocks do not."""
    runs, spec, _ = simulate(n_subjects=1, n_volumes=400, target="regions", coupled=False, seed=3)
    win = WindowSpec(window=8)
    samples = index_samples(runs, win)
    shuffled = _knn_held_out_r(runs, samples, win, shuffled_within_subject(samples, n_folds=5))
    blocked = _knn_held_out_r(runs, samples, win, blocked_in_time(samples, win, spec.tr, n_folds=5))
    assert shuffled > 0.2, shuffled
    assert abs(blocked) < 0.1, blocked
    assert shuffled - blocked > 0.2
