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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.windows import RunArrays

#: ``rows of the sample table → their targets`` (``(n, n_targets)``, in one domain's units).
Targets = Callable[[pd.DataFrame], np.ndarray]


def model_targets(model: Any, runs: Sequence[RunArrays]) -> Targets:
    """The targets a (calibrated) model's dataset gives, in its evaluation units."""
    return lambda part: np.asarray(model.dataset(runs, part.reset_index(drop=True)).targets(),
                                   dtype=np.float64)


def subject_references(runs: Sequence[RunArrays], table: pd.DataFrame, test_rows: np.ndarray
                       ) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Per tested run: which test samples it holds (bool over ``test_rows``) and the rows of
    ``table`` of the same subject outside that run's tested part — the leak-free source of the
    subject's own statistics (empty for a single, fully tested run)."""
    test_rows = np.asarray(test_rows, dtype=int)
    tested = np.zeros(len(table), dtype=bool)
    tested[test_rows] = True
    run_of = table["run_index"].to_numpy()[test_rows]
    for r in np.unique(run_of):
        subject = runs[int(r)].subject
        yield run_of == r, table[(table["subject"] == subject).to_numpy()
                                 & ~(tested & (table["run_index"] == r).to_numpy())]


def held_out_subject_mean(targets: Targets, runs: Sequence[RunArrays], table: pd.DataFrame,
                          test_rows: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, float]:
    """Each test sample's subject mean from the subject's samples outside its own tested run part.

    Parameters
    ----------
    targets
        The targets of rows of ``table`` (:func:`model_targets`, or another domain's).
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
    out = np.empty_like(true, dtype=np.float64)
    n_oracle = 0
    for at, ref in subject_references(runs, table, test_rows):
        if len(ref):
            out[at] = targets(ref).mean(axis=0)
        else:
            out[at] = true[at].mean(axis=0)
            n_oracle += int(at.sum())
    return out, n_oracle / max(len(test_rows), 1)


def training_fluctuation(targets: Targets, table: pd.DataFrame, train_rows: np.ndarray,
                         test: pd.DataFrame) -> np.ndarray:
    """The training runs' mean deviation from their own mean, at each test sample's volume index
    (0 where no training run reaches that index)."""
    train = table.iloc[np.asarray(train_rows, dtype=int)]
    total: np.ndarray | None = None
    count = np.zeros(int(max(table["volume"].max(), test["volume"].max())) + 1)
    for _, part in train.groupby("run_index"):
        y = targets(part)
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


def domain_baselines(targets: Targets, runs: Sequence[RunArrays], table: pd.DataFrame,
                     test_rows: np.ndarray, true: np.ndarray, train_mean: np.ndarray,
                     train_rows: np.ndarray | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The baselines' predictions in the domain ``targets`` gives (module docstring).

    Parameters
    ----------
    train_mean
        The training-mean prediction (broadcast to ``true``'s shape).

    Returns
    -------
    predictions : dict
        ``train_mean``, ``subject_mean`` and, with ``train_rows``, ``subject_mean_fluct``.
    info : dict
        ``subject_mean_oracle``: the fraction of samples scored against an in-sample mean.
    """
    subject, oracle = held_out_subject_mean(targets, runs, table, test_rows, true)
    out = {"train_mean": np.asarray(np.broadcast_to(train_mean, true.shape), dtype=np.float64),
           "subject_mean": subject}
    if train_rows is not None and len(train_rows):
        test = table.iloc[np.asarray(test_rows, dtype=int)]
        out["subject_mean_fluct"] = subject + training_fluctuation(targets, table, train_rows,
                                                                   test)
    return out, {"subject_mean_oracle": oracle}


def baselines(fitted: Any, runs: Sequence[RunArrays], table: pd.DataFrame,
              test_rows: np.ndarray, true: np.ndarray,
              train_rows: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The baselines' predictions for the ``test_rows`` of ``table`` in the fitted model's own
    domain and units (:func:`domain_baselines`)."""
    model = fitted.calibrated(runs, table, None)
    return domain_baselines(model_targets(model, runs), runs, table, test_rows, true,
                            fitted.direction.train_mean(fitted, true), train_rows)
