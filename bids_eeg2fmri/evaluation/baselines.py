"""Baselines every model is scored beside, in the domain the model is scored in.

- ``train_mean``: the training targets' mean (one volume / spectrum for every sample).
- ``subject_mean``: the test subject's own mean, from data the model is not tested on: the
  subject's other runs and the non-test samples of the same run (a blocked split's training
  blocks). Only a subject with a single, fully tested run falls back to the mean of the tested
  samples themselves (an oracle); ``subject_mean_oracle`` counts the fraction of such samples.
  In the intensity domain this volume carries the subject's anatomy (Bricman & Borst's
  subject baseline); on z-scored fluctuations it is ≈ 0.
- ``subject_mean_fluct``: the subject mean plus the training-mean fluctuation, i.e. the average
  over training runs of each run's deviation from its own mean at the same volume index (what a
  shared, stimulus-locked response predicts without any EEG).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.windows import RunArrays


def _targets(model: Any, runs: Sequence[RunArrays], table: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.dataset(runs, table.reset_index(drop=True)).targets(),
                      dtype=np.float64)


def held_out_subject_mean(model: Any, runs: Sequence[RunArrays], table: pd.DataFrame,
                          test_rows: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, float]:
    """Each test sample's subject mean from the subject's samples outside its own tested run part.

    Parameters
    ----------
    model
        A calibrated fitted model (its dataset gives targets in the evaluation units).
    table
        Every sample of ``runs``.
    test_rows
        The evaluated rows of ``table``, in the order of ``true``.
    true
        The evaluated targets.

    Returns
    -------
    prediction : ndarray
        Shaped like ``true``.
    oracle : float
        Fraction of test samples whose subject had no other data (in-sample mean used).
    """
    test_rows = np.asarray(test_rows, dtype=int)
    test = table.iloc[test_rows]
    tested = np.zeros(len(table), dtype=bool)
    tested[test_rows] = True
    out = np.empty_like(true, dtype=np.float64)
    n_oracle = 0
    run_of = test["run_index"].to_numpy()
    for r in np.unique(run_of):
        at = run_of == r
        subject = runs[int(r)].subject
        ref = table[(table["subject"] == subject).to_numpy()
                    & ~(tested & (table["run_index"] == r).to_numpy())]
        if len(ref):
            out[at] = _targets(model, runs, ref).mean(axis=0)
        else:
            out[at] = true[at].mean(axis=0)
            n_oracle += int(at.sum())
    return out, n_oracle / max(len(test_rows), 1)


def training_fluctuation(model: Any, runs: Sequence[RunArrays], table: pd.DataFrame,
                         train_rows: np.ndarray, test: pd.DataFrame) -> np.ndarray:
    """The training runs' mean deviation from their own mean, at each test sample's volume index
    (0 where no training run reaches that index)."""
    train = table.iloc[np.asarray(train_rows, dtype=int)]
    total: np.ndarray | None = None
    count = np.zeros(int(max(table["volume"].max(), test["volume"].max())) + 1)
    for _, part in train.groupby("run_index"):
        y = _targets(model, runs, part)
        dev = y - y.mean(axis=0)
        if total is None:
            total = np.zeros((len(count),) + y.shape[1:])
        vols = part["volume"].to_numpy()
        np.add.at(total, vols, dev)
        np.add.at(count, vols, 1)
    if total is None:
        raise ValueError("no training rows to take a fluctuation from")
    mean = total / np.maximum(count, 1).reshape((-1,) + (1,) * (total.ndim - 1))
    return mean[test["volume"].to_numpy()]


def baselines(fitted: Any, runs: Sequence[RunArrays], table: pd.DataFrame,
              test_rows: np.ndarray, true: np.ndarray,
              train_rows: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The baselines' predictions for the ``test_rows`` of ``table`` (module docstring).

    Returns
    -------
    predictions : dict
        ``train_mean``, ``subject_mean`` and, with ``train_rows``, ``subject_mean_fluct``.
    info : dict
        ``subject_mean_oracle``: the fraction of samples scored against an in-sample mean.
    """
    model = fitted.calibrated(runs, table, None)
    subject, oracle = held_out_subject_mean(model, runs, table, test_rows, true)
    out = {"train_mean": np.asarray(fitted.direction.train_mean(fitted, true), dtype=np.float64),
           "subject_mean": subject}
    if train_rows is not None and len(train_rows):
        test = table.iloc[np.asarray(test_rows, dtype=int)]
        out["subject_mean_fluct"] = subject + training_fluctuation(model, runs, table, train_rows,
                                                                   test)
    return out, {"subject_mean_oracle": oracle}
