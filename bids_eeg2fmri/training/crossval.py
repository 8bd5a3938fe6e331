"""Cross-validation of one or more models with the baselines reported next to each fold."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..bids.derivatives import atomic_write_text
from ..data.splits import Fold, make_folds
from ..data.windows import DataSpec, RunArrays, WindowSpec, index_samples
from .api import Evaluation, default_window, evaluate, fit
from .trainer import TrainConfig

METRICS_FILE = "cv_metrics.tsv"


@dataclass
class CVResult:
    """Per-fold scores (one row per model and fold, baselines as columns) and the evaluations."""

    table: pd.DataFrame
    evaluations: dict[tuple[str, str], Evaluation] = field(default_factory=dict)
    folds: list[Fold] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Mean over folds of every numeric column, per model."""
        return self.table.drop(columns=["fold"]).groupby("model", sort=False).mean(numeric_only=True)


def cross_validate(runs: Sequence[RunArrays], spec: DataSpec, models: Sequence[str], *,
                   regime: str = "loso", k: int = 5, buffer: int | None = None,
                   window: WindowSpec | None = None, train_config: TrainConfig | None = None,
                   hparams: dict[str, dict[str, Any]] | None = None,
                   out_dir: str | os.PathLike | None = None, resume: bool = False,
                   seed: int = 0) -> CVResult:
    """Fit and evaluate every model on every fold of ``regime``.

    Parameters
    ----------
    regime
        ``loso``, ``kfold`` (``k`` folds over subjects), ``blocked`` (``k`` time blocks within
        subjects, ``buffer`` volumes apart) or ``split`` (0.5/0.25/0.25 subjects); ``shuffled`` is
        refused (see :mod:`bids_eeg2fmri.data.splits`).
    window
        One window for all models, so they are scored on the same samples (default: ~20 s with the
        largest history any model needs).
    hparams
        Model name → hyper-parameter overrides.
    out_dir
        Per model and fold ``<model>/<fold>/{checkpoint.pt,model.safetensors,losses.tsv}`` and the table
        ``cv_metrics.tsv``.

    Returns
    -------
    CVResult
    """
    window = window or default_window(spec, models)
    samples = index_samples(runs, window)
    folds = make_folds(samples, regime, spec=window, tr=spec.tr, k=k, buffer=buffer, seed=seed)
    out = Path(out_dir) if out_dir is not None else None
    records, evaluations = [], {}
    for name in models:
        for fold in folds:
            fitted = fit(runs, spec, name, window=window, samples=samples, rows=fold.train,
                         val_rows=fold.val if len(fold.val) else None,
                         hparams=(hparams or {}).get(name), train_config=train_config,
                         out_dir=None if out is None else out / name / fold.name, resume=resume)
            ev = evaluate(fitted, runs, samples=samples, rows=fold.test)
            evaluations[(name, fold.name)] = ev
            records.append({"model": name, "fold": fold.name, "n_train": len(fold.train),
                            "n_test": len(fold.test), **ev.metrics})
    table = pd.DataFrame.from_records(records)
    if out is not None:
        atomic_write_text(out / METRICS_FILE, table.to_csv(sep="\t", index=False, na_rep="n/a"))
    return CVResult(table, evaluations, folds)
