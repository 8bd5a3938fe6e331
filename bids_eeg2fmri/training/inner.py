"""Participant-wise inner validation of the deep models (``--validation participant``).

By default a deep model early-stops, and a shrinkable one scales its predictions
(:mod:`.shrinkage`), on the buffered last 20 % in time of every training run
(:func:`~bids_eeg2fmri.data.splits.validation_blocks`). Those samples come from the participants
the network trains on, so they measure generalisation in *time*; leave-one-subject-out
cross-validation tests generalisation to a *new participant*, and a network that fits its training
participants' idiosyncrasies can pass the first and fail the second.

With ``TrainConfig(validation="participant")`` and at least two training participants,
:func:`~.core.fit` instead asks the training participants themselves: for each one, a network is
trained on the others with early stopping on that held-out participant (inner
leave-one-participant-out, :func:`participant_folds`); its best epoch, and for shrinkable models its
per-target validation sums ``<p, y>`` and ``<p, p>``, are recorded. The final network is then
trained on all training participants for the median of the inner best epochs, without early
stopping, and shrunk by the scales of the pooled inner sums (:func:`choose_by_participants`).
The outer test participant is never among the rows given to ``fit``, so it is in no inner fold.
The cost is about ``k + 1`` trainings for ``k`` training participants instead of one. With fewer
than two training participants there is nothing to hold out: ``fit`` falls back to time blocks
and records why (:data:`FALLBACK_NOTE`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..data.splits import Fold, leave_one_subject_out
from .options import TrainConfig
from .shrinkage import prediction_sums

LOG = logging.getLogger(__name__)

#: The model card's and the log's words when participant validation cannot be done.
FALLBACK_NOTE = ("participant validation needs at least 2 training participants; the training "
                 "rows hold {n}, so the model early-stopped on time blocks instead")


@dataclass
class InnerChoice:
    """What the inner leave-one-participant-out folds chose.

    Attributes
    ----------
    epochs
        Epochs of the final training: the median of the folds' best epochs.
    folds
        Per inner fold: the held-out participant, its best epoch and validation loss, and the
        numbers of training and validation samples.
    cross, power
        Per target, ``<p, y>`` and ``<p, p>`` summed over every fold's held-out participant
        (None when the model is not shrunk).
    """

    epochs: int
    folds: list[dict[str, Any]] = field(default_factory=list)
    cross: np.ndarray | None = None
    power: np.ndarray | None = None

    def provenance(self) -> dict[str, Any]:
        """The fitted model's metadata entries of the choice."""
        return {"validation": "participant", "inner_epochs": self.epochs,
                "inner_folds": self.folds}


def participant_folds(samples: pd.DataFrame, rows: np.ndarray) -> list[Fold]:
    """Inner leave-one-participant-out folds over the participants of ``rows`` (positions in
    ``samples``): each fold trains on the other participants' rows and validates (``test``) on
    one participant's; empty with fewer than two participants."""
    rows = np.asarray(rows, dtype=int)
    table = samples.iloc[rows].reset_index(drop=True)
    if table["subject"].nunique() < 2:
        return []
    return [Fold(f.name, rows[f.train], rows[f.test]) for f in leave_one_subject_out(table)]


def median_epoch(best_epochs: Sequence[int], max_epochs: int) -> int:
    """The median of the inner folds' best epochs (1-based; half rounds up), within
    ``[1, max_epochs]``; ``max_epochs`` when no fold found a best epoch (``-1``)."""
    found = [e for e in best_epochs if e >= 1]
    if not found:
        return max_epochs
    return int(min(max(np.floor(np.median(found) + 0.5), 1), max_epochs))


def validation_sums(fitted: Any, runs: Sequence[Any], samples: pd.DataFrame,
                    rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target ``<p, y>`` and ``<p, p>`` of a fitted model on the held-out participant's
    ``rows``, normalised as early stopping saw them (its own statistics, as a test participant's
    are in :func:`~.core.evaluate`)."""
    table = samples.iloc[np.asarray(rows, dtype=int)]
    ds = fitted.calibrated(runs, table, None).dataset(runs, table)
    loader = DataLoader(ds, batch_size=64, shuffle=False)
    return prediction_sums(fitted.model, loader, torch.device("cpu"), None)


def choose_by_participants(fit_fold: Callable[..., Any], folds: Sequence[Fold],
                           runs: Sequence[Any], samples: pd.DataFrame, config: TrainConfig, *,
                           out_dir: Path | None = None, resume: bool = False) -> InnerChoice:
    """Run the inner folds and choose the final epoch count and the shrinkage sums.

    Parameters
    ----------
    fit_fold
        :func:`~.core.fit` with the data, model and options bound; called with ``rows``,
        ``val_rows``, ``train_config``, ``out_dir`` and ``resume``.
    folds
        :func:`participant_folds` of the training rows.
    runs, samples
        The data and the sample table the fold rows index.
    config
        The final training's settings; each inner fold trains with them, unshrunk.
    out_dir
        Where each fold's checkpoint and losses go (``<out_dir>/inner/<fold>``).

    Returns
    -------
    InnerChoice
    """
    inner_config = replace(config, shrink=False)
    records, cross, power = [], None, None
    for fold in folds:
        fitted = fit_fold(rows=fold.train, val_rows=fold.test, train_config=inner_config,
                          out_dir=None if out_dir is None else out_dir / "inner" / fold.name,
                          resume=resume)
        prov = fitted.provenance
        records.append({"held_out": fold.name, "best_epoch": int(prov.get("best_epoch", -1)),
                        "best_val_loss": float(prov.get("best_val_loss", float("nan"))),
                        "n_train": int(len(fold.train)), "n_val": int(len(fold.test))})
        if config.shrink and getattr(fitted.model, "shrinkable", False):
            c, p = validation_sums(fitted, runs, samples, fold.test)
            cross, power = (c, p) if cross is None else (cross + c, power + p)
    epochs = median_epoch([r["best_epoch"] for r in records], config.epochs)
    LOG.info("participant validation: best epochs %s over held-out %s → %d epoch(s) on all",
             [r["best_epoch"] for r in records], [r["held_out"] for r in records], epochs)
    return InnerChoice(epochs, records, cross, power)
