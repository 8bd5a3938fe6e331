"""The seed's fMRI→EEG protocol: a base model across subjects, then per-subject fine-tuning.

1. **Base model**: *k*-fold cross-validation over subjects (default 5 folds, 80/20): the model is
   trained on the subjects of the other folds.
2. **Per test subject**: its samples are cut in time (per run) into a *fine-tuning* block (the
   first ``fraction`` of the run's samples), a buffer of :meth:`SequenceSpec.min_buffer` volumes
   (window + HRF reach: no BOLD window of one block overlaps one of the other, and no window
   carries the haemodynamic trace of the other block's EEG), and a *test* block (the rest).
3. The base model is fine-tuned on the fine-tuning block (all weights, a lower learning rate, a
   fixed small number of epochs; a ridge is refitted on its residual) and both models are scored on
   the test block, side by side. Both use the same units: the subject's EEG statistics from the
   fine-tuning block (its calibration data), so the comparison isolates what fine-tuning learns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_write_text
from ..data.splits import make_folds
from ..data.windows import DataSpec, RunArrays, SequenceSpec, index_samples
from ..errors import UsageError
from ..models import registry
from .core import Evaluation, evaluate, fit
from .direction import Direction, get_direction
from .model import FittedModel
from .options import TrainConfig

STAGES = ("base", "finetuned")


def finetune_split(samples: pd.DataFrame, rows: np.ndarray, spec: SequenceSpec, tr: float, *,
                   fraction: float = 0.5, buffer: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut one subject's samples into a fine-tuning block and a later test block, per run.

    Parameters
    ----------
    samples
        The sample table.
    rows
        The subject's rows.
    fraction
        Share of every run's sample span used for fine-tuning (from the start of the run).
    buffer
        Gap in volumes between the last fine-tuning and the first test sample; default and minimum
        :meth:`SequenceSpec.min_buffer`.

    Returns
    -------
    finetune_rows, test_rows : ndarray

    Raises
    ------
    UsageError
        For a fraction outside (0, 1), a buffer below the minimum, or a run too short for both
        blocks.
    """
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"the fine-tuning fraction must lie strictly between 0 and 1, got {fraction}")
    minimum = spec.min_buffer(tr)
    buffer = minimum if buffer is None else int(buffer)
    if buffer < minimum:
        raise UsageError(f"a buffer of {buffer} volumes lets fine-tuning and test windows overlap "
                         f"(window + HRF reach = {minimum} volumes)")
    rows = np.asarray(rows, dtype=int)
    run = samples["run_index"].to_numpy()[rows]
    vol = samples["volume"].to_numpy()[rows]
    ft, te = [], []
    for r in np.unique(run):
        sel = rows[run == r]
        v = vol[run == r]
        cut = v.min() + fraction * (v.max() - v.min())
        ft.append(sel[v <= cut])
        last = v[v <= cut].max()
        te.append(sel[v >= last + buffer])
    ft_rows, te_rows = np.concatenate(ft), np.concatenate(te)
    if not len(ft_rows) or not len(te_rows):
        raise UsageError(f"runs of subject {samples['subject'].iloc[rows[0]]} are too short for a "
                         f"fine-tuning block, a {buffer}-volume buffer and a test block")
    return ft_rows, te_rows


def windows_overlap(samples: pd.DataFrame, rows_a: np.ndarray, rows_b: np.ndarray,
                    spec: SequenceSpec) -> bool:
    """True when a BOLD window of a sample in ``rows_a`` shares a volume with one in ``rows_b``."""
    a = samples.iloc[np.asarray(rows_a, dtype=int)]
    b = samples.iloc[np.asarray(rows_b, dtype=int)]
    for r, ga in a.groupby("run_index"):
        gb = b[b["run_index"] == r]
        if gb.empty:
            continue
        va = spec.window_start(ga["volume"].to_numpy())
        vb = spec.window_start(gb["volume"].to_numpy())
        # Windows [s, s + span - 1] overlap when their starts are less than a span apart.
        if (np.abs(va[:, None] - vb[None, :]) < spec.span()).any():
            return True
    return False


@dataclass
class FinetuneResult:
    """One row per model, fold, test subject and stage (``base`` / ``finetuned``)."""

    table: pd.DataFrame
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    samples: pd.DataFrame | None = None

    def side_by_side(self, metric: str) -> pd.DataFrame:
        """``metric`` per model and subject with and without fine-tuning, and the gain."""
        wide = self.table.pivot_table(index=["model", "subject"], columns="stage", values=metric)
        wide = wide[[s for s in STAGES if s in wide]]
        wide["gain"] = wide["finetuned"] - wide["base"]
        return wide


def finetune_settings(cfg: TrainConfig, model: str, direction: str | Direction) -> TrainConfig:
    """Fine-tuning settings derived from the base model's: a third of the learning rate (the
    model's registered one unless set) and of the epochs (at least 5), no early stopping."""
    lr = cfg.lr or registry.entry(model, get_direction(direction).name).lr
    return replace(cfg, lr=lr / 3.0, epochs=max(5, cfg.epochs // 3), patience=0)


def finetune_subject(base: FittedModel, runs: Sequence[RunArrays], samples: pd.DataFrame,
                     rows: np.ndarray, config: TrainConfig, *, fraction: float = 0.5,
                     buffer: int | None = None, device: str = "auto", **score_options: Any
                     ) -> tuple[FittedModel, np.ndarray, np.ndarray, dict[str, Evaluation]]:
    """Fine-tune ``base`` on one subject's first block and score both models on its test block.

    Parameters
    ----------
    rows
        The subject's rows of ``samples``.
    config
        Fine-tuning settings (see :func:`finetune_settings`).

    Returns
    -------
    tuned, finetune_rows, test_rows, evaluations
        ``evaluations`` maps ``base`` and ``finetuned`` to their scores on the test rows, both in
        the units of the subject's calibration block.
    """
    ft_rows, te_rows = finetune_split(samples, rows, base.window, base.data_spec.tr,
                                      fraction=fraction, buffer=buffer)
    if windows_overlap(samples, ft_rows, te_rows, base.window):
        raise RuntimeError(f"sub-{samples['subject'].iloc[rows[0]]}: fine-tuning and test "
                           "windows overlap")
    calibrated = base.calibrated(runs, samples, ft_rows)
    tuned = fit(runs, base.data_spec, base.name, direction=base.direction, window=base.window,
                samples=samples, rows=ft_rows, val_rows=np.empty(0, dtype=int),
                train_config=config, init=base)
    scores = {stage: evaluate(model, runs, samples=samples, rows=te_rows, device=device,
                              **score_options)
              for stage, model in zip(STAGES, (calibrated, tuned))}
    return tuned, ft_rows, te_rows, scores


def finetune_protocol(runs: Sequence[RunArrays], spec: DataSpec,
                      models: Sequence[str] = ("rnn-seq2seq",), *,
                      direction: str | Direction = "fmri2eeg",
                      window: SequenceSpec | None = None, k: int = 5, fraction: float = 0.5,
                      buffer: int | None = None, train_config: TrainConfig | None = None,
                      finetune_config: TrainConfig | None = None,
                      hparams: dict[str, dict[str, Any]] | None = None,
                      bands: dict[str, tuple[float, float]] | None = None,
                      groups: dict[str, list[str]] | None = None, seed: int = 0,
                      out_dir: str | os.PathLike | None = None) -> FinetuneResult:
    """Run the protocol of the module docstring.

    Parameters
    ----------
    models
        Registered models of ``direction``.
    k
        Folds over subjects for the base models.
    fraction, buffer
        See :func:`finetune_split`.
    train_config
        Base-model training; the base models train on all samples of their training subjects for
        the configured epochs (no early-stopping block is carved out of them).
    finetune_config
        Fine-tuning; default :func:`finetune_settings` of ``train_config``.
    out_dir
        ``finetune_metrics.tsv``.

    Returns
    -------
    FinetuneResult
        Per subject ``base`` and ``finetuned`` scores on the same test block.
    """
    d = get_direction(direction)
    window = window or d.default_window(spec, models)
    cfg = train_config or TrainConfig()
    samples = index_samples(runs, window)
    folds = make_folds(samples, "kfold", spec=window, tr=spec.tr, k=k, seed=seed)
    records, splits = [], {}
    empty = np.empty(0, dtype=int)
    for name in models:
        ft_cfg = finetune_config or finetune_settings(cfg, name, d)
        for fold in folds:
            base = fit(runs, spec, name, direction=d, window=window, samples=samples,
                       rows=fold.train, val_rows=empty, hparams=(hparams or {}).get(name),
                       train_config=cfg)
            sub = samples["subject"].to_numpy()
            for subject in dict.fromkeys(sub[fold.test]):
                rows = fold.test[sub[fold.test] == subject]
                _, ft_rows, te_rows, scores = finetune_subject(
                    base, runs, samples, rows, ft_cfg, fraction=fraction, buffer=buffer,
                    bands=bands, groups=groups)
                splits[subject] = (ft_rows, te_rows)
                for stage, ev in scores.items():
                    records.append({"model": name, "fold": fold.name, "subject": subject,
                                    "stage": stage, "n_finetune": len(ft_rows),
                                    "n_test": len(te_rows), **ev.metrics})
    table = pd.DataFrame.from_records(records)
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "finetune_metrics.tsv",
                          table.to_csv(sep="\t", index=False, na_rep="n/a"))
    return FinetuneResult(table, splits, samples)

