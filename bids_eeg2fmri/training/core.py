"""The one learning core: :func:`fit`, :func:`evaluate` and :func:`cross_validate`, for either
direction (a :class:`~.direction.Direction` or its name).

``fit`` takes runs of arrays (:class:`~bids_eeg2fmri.data.windows.RunArrays`), the
:class:`~bids_eeg2fmri.data.windows.DataSpec` describing them, a registered model name and the rows
of the sample table to train on. It fits the normalisers on those rows only, trains (or solves, for
closed-form models such as ``ridge``), and returns a :class:`~.model.FittedModel`. ``evaluate``
scores a fitted model beside the two baselines (training mean, subject mean), and
``cross_validate`` fits and scores every model on every fold of a leakage-safe split. The group
level, the apply step, the single-region analysis, fine-tuning and the model benchmarks all call
these functions.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import functools
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._version import __version__
from ..bids.derivatives import atomic_write_text
from ..data.splits import Fold, blocked_in_time, leave_one_subject_out, make_folds, validation_blocks
from ..data.windows import DataSpec, RunArrays, index_samples
from ..errors import UsageError, UserError
from ..models import registry
from ..evaluation.baselines import baselines as baseline_predictions
from . import inner
from .direction import Direction, get_direction
from .model import CHECKPOINT_FILE, LOSS_FILE, MODEL_FILE, FittedModel, load_model
from .options import TrainConfig
from .shrinkage import shrink, shrinkage_summary
from .trainer import seed_everything, train

METRICS_FILE = "cv_metrics.tsv"

#: ``(samples, training rows) → (runs, spec, input transform)``: inputs fitted on a fold's
#: training rows only (the fMRI→EEG voxel PCA); the transform is kept as ``input_pca``.
FoldInputs = Callable[[pd.DataFrame, np.ndarray], tuple[Sequence[RunArrays], DataSpec, Any]]


def fit(runs: Sequence[RunArrays], spec: DataSpec, model: str = "ridge", *,
        direction: str | Direction = "eeg2fmri", window: Any = None,
        samples: pd.DataFrame | None = None, rows: np.ndarray | None = None,
        val_rows: np.ndarray | None = None, hparams: dict[str, Any] | None = None,
        train_config: TrainConfig | None = None, out_dir: str | os.PathLike | None = None,
        resume: bool = False, init: FittedModel | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> FittedModel:
    """Train model ``model`` of ``direction`` on the samples ``rows`` of ``runs``.

    Parameters
    ----------
    runs, spec
        The data and its description; every run must match ``spec``.
    model
        Registered name (see :func:`bids_eeg2fmri.models.registry.available`).
    direction
        ``eeg2fmri`` or ``fmri2eeg`` (or a :class:`~.direction.Direction`).
    window
        Sample cutting (the direction's window class); default the direction's default window
        (``init``'s when fine-tuning).
    samples
        The sample table (:func:`~bids_eeg2fmri.data.windows.index_samples` of ``runs`` with
        ``window``); built when None.
    rows
        Training rows of ``samples``; all when None.
    val_rows
        Early-stopping rows; by default (``train_config.validation`` ``time``) the buffered last
        20 % of every training run (:func:`~bids_eeg2fmri.data.splits.validation_blocks`); with
        ``participant`` and ≥ 2 training participants none: the epoch count and the shrinkage
        come from inner leave-one-participant-out folds of ``rows`` (:mod:`.inner`). Pass an
        empty array to train for the full number of epochs.
    hparams
        Overrides of the model's registered defaults.
    train_config
        Optimisation settings; default :class:`~.trainer.TrainConfig` (built from the group
        options' defaults).
    out_dir
        Where ``checkpoint.pt`` (every epoch), ``losses.tsv`` and the final ``model.safetensors`` go.
    resume
        Continue from ``out_dir/checkpoint.pt`` when present.
    init
        A fitted model to start from (fine-tuning): its weights and hyper-parameters; its
        normalisers are kept and extended by the subjects of ``rows`` (fitted on those rows). A
        closed-form model is refitted on the residual of ``init``'s predictions, i.e. shrunk
        towards ``init``'s weights instead of towards zero.
    on_epoch_end
        Passed to the trainer (tests use it to interrupt training).

    Returns
    -------
    FittedModel
    """
    d = get_direction(direction)
    cfg = train_config or TrainConfig()
    entry = registry.entry(model, d.name)
    window = window or (init.window if init is not None else d.default_window(spec, [model]))
    d.check(model, spec, window)
    for run in runs:
        spec.check_run(run)
        run.check_finite()
    if init is not None:
        if init.name != model or init.window != window:
            raise UsageError(f"fine-tuning needs the base model's name and window ({init.name}, "
                             f"{init.window})")
        init.data_spec.check_compatible(spec)
    if samples is None:
        samples = index_samples(runs, window)
    rows = np.arange(len(samples)) if rows is None else np.asarray(rows, dtype=int)
    out = Path(out_dir) if out_dir is not None else None
    # What the network early-stops on, for its metadata: the caller's rows, none, time blocks
    # or the training participants (closed-form models choose their penalty themselves).
    validation: dict[str, Any] = ({} if entry.closed_form or val_rows is None else
                                  {"validation": "given" if len(val_rows) else "none"})
    choice = None
    if val_rows is None and not entry.closed_form:
        folds = inner.participant_folds(samples, rows) if cfg.validation == "participant" else []
        if folds:
            # The epoch count and shrinkage come from the training participants held out in
            # turn; the final network trains on all of them for that many epochs.
            choice = inner.choose_by_participants(
                functools.partial(fit, runs, spec, model, direction=d, window=window,
                                  samples=samples, hparams=hparams, init=init),
                folds, runs, samples, cfg, out_dir=out, resume=resume)
            cfg = dataclasses.replace(cfg, epochs=choice.epochs)
            val_rows, validation = np.empty(0, dtype=int), choice.provenance()
        else:
            rows, val_rows = validation_blocks(samples, rows, window, spec.tr)
            validation = {"validation": "time"}
            if cfg.validation == "participant":
                n = int(samples.iloc[rows]["subject"].nunique())
                validation["validation_note"] = inner.FALLBACK_NOTE.format(n=n)
                inner.LOG.warning("%s: %s", model, validation["validation_note"])
    elif val_rows is None:
        val_rows = np.empty(0, dtype=int)
    val_rows = np.asarray(val_rows, dtype=int)
    table = samples.iloc[rows]
    if init is not None:
        calibrated = init.calibrated(runs, samples, rows)
        input_norm, target_norm = calibrated.input_norm, calibrated.target_norm
        hp = dict(init.hparams)
    else:
        input_norm, target_norm = d.fit_normalisers(runs, table, window)
        hp = registry.resolve_hparams(model, hparams, d.name)
    train_ds = d.dataset(runs, table, window, input_norm, target_norm)
    seed_everything(cfg.seed)
    net = (copy.deepcopy(init.model) if init is not None
           else registry.build(model, d.model_shape(spec, window), hp, direction=d.name))
    provenance = {
        "software": f"bids_eeg2fmri {__version__}", "torch": torch.__version__,
        "python": platform.python_version(), "direction": d.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "subjects": sorted(set(table["subject"])),
        "runs": sorted({runs[int(i)].key for i in table["run_index"].unique()}),
        "n_train": int(len(rows)), "n_val": int(len(val_rows)), "train_config": asdict(cfg),
        "lr": cfg.lr or entry.lr, "paper": entry.paper, **d.notes, **validation}
    if init is not None:
        provenance["finetuned_from"] = init.provenance.get("subjects")
    fitted = FittedModel(model, net, hp, spec, window, input_norm, target_norm, d, provenance)
    val_ds = _validation_set(fitted, runs, samples, val_rows, set(table["subject"]))
    if entry.closed_form:
        _solve(net, train_ds, table, window, spec.tr, init, provenance)
    else:
        meta = {k: v for k, v in fitted.state().items() if k != "model_state"}
        result = train(net, train_ds, val_ds, cfg, lr=entry.lr,
                       checkpoint=None if out is None else out / CHECKPOINT_FILE, resume=resume,
                       loss_log=None if out is None else out / LOSS_FILE, extra={"fitted": meta},
                       on_epoch_end=on_epoch_end)
        fitted.history = result.history
        provenance.update(best_epoch=result.best_epoch, best_val_loss=result.best_val,
                          stopped_early=result.stopped_early, device=result.device,
                          **shrinkage_summary(result.shrinkage),
                          resumed_from_epoch=result.resumed_from)
        if choice is not None:
            # The final network has no validation samples: its epoch is the inner folds' choice.
            provenance["best_epoch"] = choice.epochs
            if choice.cross is not None:
                provenance.update(shrinkage_summary(shrink(net, choice.cross, choice.power)))
    net.to("cpu").eval()
    if out is not None:
        fitted.save(out / MODEL_FILE)
    return fitted


def _validation_set(fitted: FittedModel, runs: Sequence[RunArrays], samples: pd.DataFrame,
                    val_rows: np.ndarray, trained: set[str]) -> Any:
    """The early-stopping samples as a dataset (None without). Participants the network does
    not train on (inner participant folds, the ``split`` regime's validation participants) are
    normalised with their own statistics, as a test participant is in :func:`evaluate`."""
    if not len(val_rows):
        return None
    table = samples.iloc[val_rows]
    if set(table["subject"]) <= trained:
        return fitted.dataset(runs, table)
    return fitted.calibrated(runs, table, None).dataset(runs, table)


def _solve(net: torch.nn.Module, train_ds: Any, table: pd.DataFrame, window: Any, tr: float,
           init: FittedModel | None, provenance: dict[str, Any]) -> None:
    """Fit a closed-form model; when fine-tuning, on the residual of ``init``, then add its
    weights back."""
    x = np.stack([train_ds[i]["x"].numpy() for i in range(len(train_ds))])
    y = np.stack([train_ds[i]["y"].numpy() for i in range(len(train_ds))])
    prior = None
    if init is not None:
        prior = (init.model.weight.clone(), init.model.bias.clone())
        with torch.no_grad():
            y = y - init.model(torch.as_tensor(x)).numpy()
    provenance.update(net.fit_closed_form(x, y, inner_folds(table, window, tr)))
    if prior is not None:
        net.weight += prior[0]
        net.bias += prior[1]
    provenance["device"] = "cpu"


def inner_folds(table: pd.DataFrame, window: Any, tr: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leakage-safe inner folds of a training table: subjects when ≥ 3, else time blocks."""
    local = table.reset_index(drop=True)
    if local["subject"].nunique() >= 3:
        folds = leave_one_subject_out(local)
    else:
        try:
            folds = blocked_in_time(local, window, tr, n_folds=4)
        except UserError:
            return []  # too little data for buffered blocks: ridge falls back to its default alpha
    return [(f.train, f.test) for f in folds]


@dataclass
class Evaluation:
    """Predictions and scores of one model on one set of samples.

    Attributes
    ----------
    metrics
        The direction's scores (:attr:`~.direction.Direction.headline` names the main ones).
    per_subject
        The scores per evaluated subject (empty where the direction scores pooled samples only).
    pred, true, truth
        Predictions, measurements and noiseless truth (None without) in the evaluation units.
    baselines
        The baselines' predictions (:mod:`bids_eeg2fmri.evaluation.baselines`).
    """

    metrics: dict[str, float]
    pred: np.ndarray
    true: np.ndarray
    truth: np.ndarray | None
    samples: pd.DataFrame
    baselines: dict[str, np.ndarray]
    per_subject: pd.DataFrame = field(default_factory=pd.DataFrame)


def evaluate(fitted: FittedModel | str | os.PathLike, runs: Sequence[RunArrays],
             spec: DataSpec | None = None, *, samples: pd.DataFrame | None = None,
             rows: np.ndarray | None = None, train_rows: np.ndarray | None = None,
             device: str = "auto", **score_options: Any) -> Evaluation:
    """Score a fitted model (or a saved one) on samples of ``runs``, beside the baselines.

    The baselines (:mod:`bids_eeg2fmri.evaluation.baselines`) are the **training mean**, the
    **subject mean** (each evaluated subject's own mean from its other runs or non-test samples)
    and, given ``train_rows``, the subject mean plus the **training-mean fluctuation**. Subjects
    the model has no statistics for are normalised with their own
    (:meth:`FittedModel.calibrated`); pass a model calibrated on other rows to use those instead.

    Parameters
    ----------
    rows
        The evaluated rows of ``samples`` (all when None).
    train_rows
        The rows of ``samples`` the model was trained on (for the fluctuation baseline).
    score_options
        Passed to the direction's scores (fMRI→EEG: ``bands``, ``groups``).
    """
    if not isinstance(fitted, FittedModel):
        fitted = load_model(fitted)
    fitted.check(runs, spec)
    if samples is None:
        samples = index_samples(runs, fitted.window)
    table = samples.reset_index(drop=True)
    rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=int)
    samples = table.iloc[rows].reset_index(drop=True)
    pred = fitted.predict(runs, samples=samples, device=device)
    calibrated = fitted.calibrated(runs, samples, None)
    ds = calibrated.dataset(runs, samples)
    true = ds.targets()
    truth = ds.truth()
    baselines, info = baseline_predictions(fitted, runs, table, rows, true, train_rows)
    # Scored with the statistics the targets were normalised with (fMRI→EEG's dB levels).
    metrics, per_subject = fitted.direction.score(pred, true, truth, baselines, calibrated,
                                                  samples, **score_options)
    metrics.update(info)
    return Evaluation(metrics, pred, true, truth, samples, baselines, per_subject)


@dataclass
class CVResult:
    """Per-fold scores (one row per model and fold), per-subject scores and the evaluations."""

    table: pd.DataFrame
    evaluations: dict[tuple[str, str], Evaluation] = field(default_factory=dict)
    folds: list[Fold] = field(default_factory=list)
    per_subject: pd.DataFrame = field(default_factory=pd.DataFrame)
    samples: pd.DataFrame | None = None

    def summary(self) -> pd.DataFrame:
        """Mean over folds of every numeric column, per model."""
        return self.table.drop(columns=["fold"]).groupby("model", sort=False).mean(numeric_only=True)


def cross_validate(runs: Sequence[RunArrays], spec: DataSpec, models: Sequence[str], *,
                   direction: str | Direction = "eeg2fmri", regime: str | None = None,
                   k: int = 5, buffer: int | None = None, window: Any = None,
                   train_config: TrainConfig | None = None,
                   hparams: dict[str, dict[str, Any]] | None = None, early_stopping: bool = True,
                   fold_inputs: FoldInputs | None = None, out_dir: str | os.PathLike | None = None,
                   resume: bool = False, seed: int = 0, device: str = "auto",
                   allow_leaky: bool = False, **score_options: Any) -> CVResult:
    """Fit and evaluate every model on every fold of ``regime``.

    Parameters
    ----------
    direction
        ``eeg2fmri`` or ``fmri2eeg``.
    regime
        ``loso``, ``kfold`` (``k`` folds over subjects), ``blocked`` (``k`` time blocks within
        subjects, ``buffer`` volumes apart) or ``split`` (0.5/0.25/0.25 subjects); ``shuffled`` is
        refused (see :mod:`bids_eeg2fmri.data.splits`). Default: ``loso`` for EEG→fMRI, the
        seed's 5-fold CV over subjects (``kfold``) for fMRI→EEG. ``shuffled`` (sample-level
        folds, leaky) runs only with ``allow_leaky``.
    window
        One window for all models, so they are scored on the same samples (default: the
        direction's, with the largest history any model needs).
    hparams
        Model name → hyper-parameter overrides.
    early_stopping
        Hold out the buffered end of every training run for early stopping (when the split has
        no validation rows); False trains the full number of epochs on all training samples.
    fold_inputs
        Inputs fitted per fold on its training and validation rows (see :data:`FoldInputs`).
    out_dir
        Per model and fold ``<model>/<fold>/{checkpoint.pt,model.safetensors,losses.tsv}`` and the table
        ``cv_metrics.tsv``.
    score_options
        Passed to :func:`evaluate`.

    Returns
    -------
    CVResult
    """
    d = get_direction(direction)
    regime = regime or ("loso" if d.name == "eeg2fmri" else "kfold")
    window = window or d.default_window(spec, models)
    samples = index_samples(runs, window)
    folds = make_folds(samples, regime, spec=window, tr=spec.tr, k=k, buffer=buffer, seed=seed,
                       allow_leaky=allow_leaky)
    out = Path(out_dir) if out_dir is not None else None
    inputs = {f.name: (fold_inputs(samples, np.concatenate([f.train, f.val]))
                       if fold_inputs is not None else (runs, spec, None)) for f in folds}
    records, evaluations, per = [], {}, []
    for name in models:
        for fold in folds:
            fold_runs, fold_spec, transform = inputs[fold.name]
            val = fold.val if len(fold.val) else (None if early_stopping
                                                  else np.empty(0, dtype=int))
            fitted = fit(fold_runs, fold_spec, name, direction=d, window=window, samples=samples,
                         rows=fold.train, val_rows=val, hparams=(hparams or {}).get(name),
                         train_config=train_config,
                         out_dir=None if out is None else out / name / fold.name, resume=resume)
            fitted.input_pca = transform
            ev = evaluate(fitted, fold_runs, samples=samples, rows=fold.test,
                          train_rows=fold.train, device=device, **score_options)
            evaluations[(name, fold.name)] = ev
            records.append({"model": name, "fold": fold.name, "n_train": len(fold.train),
                            "n_test": len(fold.test), **ev.metrics})
            per.append(ev.per_subject.assign(model=name, fold=fold.name))
    table = pd.DataFrame.from_records(records)
    if out is not None:
        atomic_write_text(out / METRICS_FILE, table.to_csv(sep="\t", index=False, na_rep="n/a"))
    return CVResult(table, evaluations, folds, pd.concat(per, ignore_index=True), samples)
