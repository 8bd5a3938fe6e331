"""Cross-validation regimes that do not leak between training and test samples.

Samples cut from one run overlap: neighbouring targets share ``window − 1`` EEG volumes, and BOLD
is smooth over the ~20 s of the haemodynamic response. A split that shuffles volumes of one subject
into train and test therefore puts near-copies of every test sample into the training set, and even
a model of EEG that carries no information about BOLD scores well (``tests/test_splits.py`` shows
it). So within-subject folds are contiguous **blocks** in time, with a buffer of at least
``window + lag + HRF reach`` volumes on each side of every test block removed from training; and
between-subject regimes keep every subject whole on one side. Shuffled splits are refused.

Every regime returns :class:`Fold` objects holding row positions into the sample table of
:func:`~bids_eeg2fmri.data.windows.index_samples`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UsageError
from .windows import WindowSpec

REGIMES = ("loso", "kfold", "blocked", "split")
SHUFFLED_REFUSAL = (
    "shuffled within-subject splits are refused: neighbouring samples share all but one TR of "
    "their EEG window and ~20 s of haemodynamic signal, so shuffling puts near-copies of every test "
    "sample into training and inflates the scores even when EEG carries no information about BOLD; "
    "use --cv blocked (time blocks with a buffer), loso, kfold or split (or add "
    "--allow-leaky-split to run the leaky regime beside the leak-free one)")


@dataclass
class Fold:
    """One train/validation/test partition of the sample table (row positions)."""

    name: str
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))

    def __post_init__(self) -> None:
        for part in ("train", "test", "val"):
            setattr(self, part, np.asarray(getattr(self, part), dtype=int))
        if not len(self.train) or not len(self.test):
            raise UsageError(f"fold {self.name} has no training or no test samples; use fewer "
                             "folds or more data")


def leave_one_subject_out(samples: pd.DataFrame) -> list[Fold]:
    """One fold per subject, holding that subject out entirely."""
    subjects = _subjects(samples, need=2, regime="leave-one-subject-out")
    sub = samples["subject"].to_numpy()
    return [Fold(f"sub-{s}", np.flatnonzero(sub != s), np.flatnonzero(sub == s)) for s in subjects]


def kfold_subjects(samples: pd.DataFrame, k: int = 5, seed: int = 0) -> list[Fold]:
    """``k`` folds over subjects (subjects shuffled with ``seed``, then dealt round-robin)."""
    subjects = _subjects(samples, need=k, regime=f"{k}-fold over subjects")
    order = np.random.default_rng(seed).permutation(len(subjects))
    groups = [[subjects[j] for j in order[i::k]] for i in range(k)]
    sub = samples["subject"].to_numpy()
    return [Fold(f"fold-{i + 1}", np.flatnonzero(~np.isin(sub, g)), np.flatnonzero(np.isin(sub, g)))
            for i, g in enumerate(groups)]


def subject_split(samples: pd.DataFrame, fractions: tuple[float, float, float] = (0.5, 0.25, 0.25),
                  seed: int = 0) -> list[Fold]:
    """The seed papers' split of subjects into train/validation/test (default 0.5/0.25/0.25)."""
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise UsageError(f"split fractions must be three positive numbers summing to 1, got "
                         f"{fractions}")
    subjects = _subjects(samples, need=3, regime="train/validation/test split")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    n = len(order)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise UsageError(f"{n} subjects are too few for a {fractions} split")
    sub = samples["subject"].to_numpy()
    parts = [order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]]
    tr, va, te = (np.flatnonzero(np.isin(sub, p)) for p in parts)
    return [Fold("split", tr, te, va)]


def blocked_in_time(samples: pd.DataFrame, spec: WindowSpec, tr: float, n_folds: int = 5,
                    buffer: int | None = None) -> list[Fold]:
    """Within-subject folds: contiguous time blocks of every run, with a buffer around the test block.

    Fold ``k`` tests block ``k`` of every run; training samples closer than ``buffer`` volumes to a
    test target of the same run are dropped.

    Parameters
    ----------
    buffer
        Gap in volumes; default and minimum :meth:`WindowSpec.min_buffer` (window + lag + HRF reach).

    Raises
    ------
    UsageError
        When ``buffer`` is below the minimum, or a fold would lose all its training samples.
    """
    minimum = spec.min_buffer(tr)
    if buffer is None:
        buffer = minimum
    elif buffer < minimum:
        raise UsageError(f"a buffer of {buffer} volumes is shorter than the window plus the HRF "
                         f"reach ({minimum} volumes at TR {tr} s): training and test samples would "
                         "share signal")
    if n_folds < 2:
        raise UsageError("blocked cross-validation needs at least 2 folds")
    run = samples["run_index"].to_numpy()
    vol = samples["volume"].to_numpy()
    block = np.empty(len(samples), dtype=int)
    for r in np.unique(run):
        rows = np.flatnonzero(run == r)
        # Blocks are equal spans of the run's sample range in time, not equal counts, so a censored
        # stretch shortens one block instead of shifting every boundary.
        lo, hi = vol[rows].min(), vol[rows].max() + 1
        edges = np.linspace(lo, hi, n_folds + 1)
        block[rows] = np.clip(np.searchsorted(edges, vol[rows], side="right") - 1, 0, n_folds - 1)
    folds = []
    for k in range(n_folds):
        test = np.flatnonzero(block == k)
        keep = block != k
        for r in np.unique(run[test]):
            tv = vol[test[run[test] == r]]
            rows = np.flatnonzero((run == r) & keep)
            near = (vol[rows] >= tv.min() - buffer) & (vol[rows] <= tv.max() + buffer)
            keep[rows[near]] = False
        folds.append(Fold(f"block-{k + 1}", np.flatnonzero(keep), test))
    return folds


def validation_blocks(samples: pd.DataFrame, rows: np.ndarray, spec: WindowSpec, tr: float,
                      fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Carve an early-stopping validation set out of training rows without leakage.

    The last ``fraction`` of every run's training samples (in time) becomes validation, and a buffer
    of :meth:`WindowSpec.min_buffer` volumes before it is dropped from training.

    Returns
    -------
    train, val : ndarray
        Row positions.
    """
    rows = np.asarray(rows, dtype=int)
    run = samples["run_index"].to_numpy()[rows]
    vol = samples["volume"].to_numpy()[rows]
    buffer = spec.min_buffer(tr)
    train, val = [], []
    for r in np.unique(run):
        sel = rows[run == r]
        v = vol[run == r]
        cut = np.quantile(v, 1.0 - fraction)
        val.append(sel[v >= cut])
        train.append(sel[v < cut - buffer])
    train_rows, val_rows = np.concatenate(train), np.concatenate(val)
    if not len(train_rows):
        # Runs too short to spare a buffered block: validate on nothing and train on all; the
        # trainer then runs its fixed number of epochs without early stopping.
        return rows, np.empty(0, dtype=int)
    return train_rows, val_rows


def shuffled_within_subject(samples: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> list[Fold]:
    """Shuffled within-subject folds — **leaky**, kept only to demonstrate the leak in tests.

    :func:`make_folds` refuses this regime with :data:`SHUFFLED_REFUSAL`.
    """
    perm = np.random.default_rng(seed).permutation(len(samples))
    return [Fold(f"shuffled-{k + 1}", np.sort(np.concatenate([perm[j::n_folds]
                                                               for j in range(n_folds) if j != k])),
                 np.sort(perm[k::n_folds])) for k in range(n_folds)]


def make_folds(samples: pd.DataFrame, regime: str, *, spec: WindowSpec, tr: float, k: int = 5,
               buffer: int | None = None, seed: int = 0, allow_leaky: bool = False) -> list[Fold]:
    """Folds of the named regime: ``loso``, ``kfold``, ``blocked`` or ``split``; ``shuffled``
    (sample-level, leaky: the papers' regime) only with ``allow_leaky``.

    Raises
    ------
    UsageError
        For ``shuffled`` without ``allow_leaky`` (with the reason) and unknown names.
    """
    if regime in ("shuffled", "shuffle", "random"):
        if not allow_leaky:
            raise UsageError(SHUFFLED_REFUSAL)
        return shuffled_within_subject(samples, n_folds=k, seed=seed)
    if regime == "loso":
        return leave_one_subject_out(samples)
    if regime == "kfold":
        return kfold_subjects(samples, k=k, seed=seed)
    if regime == "blocked":
        return blocked_in_time(samples, spec, tr, n_folds=k, buffer=buffer)
    if regime == "split":
        return subject_split(samples, seed=seed)
    raise UsageError(f"unknown cross-validation regime {regime!r}; choose from {', '.join(REGIMES)}")


def _subjects(samples: pd.DataFrame, need: int, regime: str) -> list[str]:
    subjects = list(dict.fromkeys(samples["subject"]))
    if len(subjects) < need:
        raise UsageError(f"{regime} needs at least {need} subjects, the data hold "
                         f"{len(subjects)}; use --cv blocked for within-subject folds")
    return subjects
