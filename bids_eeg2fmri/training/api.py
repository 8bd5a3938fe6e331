"""The Python API the group level calls: :func:`fit`, :func:`evaluate`, :func:`load_model`.

``fit`` takes runs of arrays (:class:`~bids_eeg2fmri.data.windows.RunArrays`), the
:class:`~bids_eeg2fmri.data.windows.DataSpec` describing them, a registered model name and the rows
of the sample table to train on. It fits the normalisers on those rows only, trains (or solves, for
``ridge``), and returns a :class:`FittedModel` that carries everything needed to apply it to new
EEG: weights, hyper-parameters, the data spec (channels, frequencies, grid/affine or regions),
window, normalisation statistics and provenance. ``FittedModel.save``/``load_model`` round-trip it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import metrics as M
from .._version import __version__
from ..data.datasets import WindowDataset
from ..data.normalise import EEGNormaliser, TargetNormaliser
from ..data.splits import blocked_in_time, leave_one_subject_out, validation_blocks
from ..data.windows import DataSpec, RunArrays, WindowSpec, eeg_volumes, index_samples
from ..errors import UsageError, UserError
from ..modelfiles import WEIGHTS_FILE
from ..models import registry
from ..models.base import ModelShape
from .trainer import (SavedModel, TrainConfig, TrainResult, load_fitted_model, predict,
                      resolve_device, seed_everything, train)

MODEL_FILE = WEIGHTS_FILE
CHECKPOINT_FILE = "checkpoint.pt"
LOSS_FILE = "losses.tsv"
CHECKPOINT_FORMAT = 1


@dataclass
class FittedModel(SavedModel):
    """A trained model with what it needs to be applied to new data."""

    name: str
    model: torch.nn.Module
    hparams: dict[str, Any]
    data_spec: DataSpec
    window: WindowSpec
    eeg_norm: EEGNormaliser
    target_norm: TargetNormaliser
    provenance: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    # ------------------------------------------------------------------ apply
    def dataset(self, runs: Sequence[RunArrays], spec: DataSpec | None = None,
                samples: pd.DataFrame | None = None) -> WindowDataset:
        """Check ``runs`` (described by ``spec``) against the model and wrap them as a dataset."""
        if spec is not None:
            self.data_spec.check_compatible(spec)
        for run in runs:
            self.data_spec.check_run(run)
        if samples is None:
            samples = index_samples(runs, self.window)
        return WindowDataset(runs, samples, self.window, self.eeg_norm, self.target_norm)

    def predict(self, runs: Sequence[RunArrays], spec: DataSpec | None = None,
                samples: pd.DataFrame | None = None, device: str = "auto") -> np.ndarray:
        """Predicted BOLD in the original units, ``(n_samples, n_targets)``, in sample-table order."""
        ds = self.dataset(runs, spec, samples)
        return self.target_norm.inverse(predict(self.model, ds, device=device))

    # ------------------------------------------------------------------- save
    def state(self) -> dict[str, Any]:
        return self._state(CHECKPOINT_FORMAT, eeg_norm=self.eeg_norm.state_dict(),
                           target_norm=self.target_norm.state_dict())


def load_model(path: str | os.PathLike) -> FittedModel:
    """Read a model saved by :meth:`FittedModel.save` (or a training checkpoint of :func:`fit`)."""
    state, model = load_fitted_model(path, CHECKPOINT_FORMAT,
                                     "bids_eeg2fmri model file (unknown format)")
    return FittedModel(state["name"], model, state["hparams"], DataSpec.from_dict(state["data_spec"]),
                       WindowSpec(**state["window"]), EEGNormaliser.from_state(state["eeg_norm"]),
                       TargetNormaliser.from_state(state["target_norm"]), state["provenance"],
                       state.get("history", []))


def default_window(spec: DataSpec, models: Sequence[str] = ("ridge",), **kwargs: Any) -> WindowSpec:
    """~20 s window at the data's TR, with the largest BOLD history any of ``models`` reads."""
    history = max(registry.entry(m).history for m in models)
    return WindowSpec.from_seconds(spec.tr, history=history, **kwargs)


def fit(runs: Sequence[RunArrays], spec: DataSpec, model: str = "ridge", *,
        window: WindowSpec | None = None, samples: pd.DataFrame | None = None,
        rows: np.ndarray | None = None, val_rows: np.ndarray | None = None,
        hparams: dict[str, Any] | None = None, train_config: TrainConfig | None = None,
        out_dir: str | os.PathLike | None = None, resume: bool = False,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> FittedModel:
    """Train model ``model`` on the samples ``rows`` of ``runs``.

    Parameters
    ----------
    runs, spec
        The data and its description; every run must match ``spec``.
    model
        Registered name (see :func:`bids_eeg2fmri.models.registry.available`).
    window
        Sample cutting; default :func:`default_window` for this model.
    samples
        The sample table (:func:`~bids_eeg2fmri.data.windows.index_samples` of ``runs`` with
        ``window``); built when None.
    rows
        Training rows of ``samples``; all when None.
    val_rows
        Early-stopping rows; by default the buffered last 20 % of every training run
        (:func:`~bids_eeg2fmri.data.splits.validation_blocks`). Pass an empty array to train for
        the full number of epochs.
    hparams
        Overrides of the model's registered defaults.
    train_config
        Optimisation settings; defaults of :class:`TrainConfig`.
    out_dir
        Where ``checkpoint.pt`` (every epoch), ``losses.tsv`` and the final ``model.safetensors`` go.
    resume
        Continue from ``out_dir/checkpoint.pt`` when present.
    on_epoch_end
        Passed to the trainer (tests use it to interrupt training).

    Returns
    -------
    FittedModel
    """
    cfg = train_config or TrainConfig()
    entry = registry.entry(model)
    hp = registry.resolve_hparams(model, hparams)
    window = window or default_window(spec, [model])
    if entry.history and window.history < 1:
        # The model decodes over previous volumes; it uses as many as the window provides.
        raise UsageError(f"model {model} reads previous BOLD volumes: the window needs a history "
                         f"of at least 1 volume (default {entry.history})")
    for run in runs:
        spec.check_run(run)
        run.check_finite()
    if samples is None:
        samples = index_samples(runs, window)
    rows = np.arange(len(samples)) if rows is None else np.asarray(rows, dtype=int)
    if val_rows is None:
        if entry.closed_form:
            val_rows = np.empty(0, dtype=int)
        else:
            rows, val_rows = validation_blocks(samples, rows, window, spec.tr)
    train_table = samples.iloc[rows]
    eeg_norm = EEGNormaliser().fit(runs, {
        int(i): eeg_volumes(g["volume"].to_numpy(), window)
        for i, g in train_table.groupby("run_index")})
    target_norm = TargetNormaliser().fit(
        np.asarray(runs[int(i)].bold[np.sort(g["volume"].to_numpy())])
        for i, g in train_table.groupby("run_index"))
    train_ds = WindowDataset(runs, train_table, window, eeg_norm, target_norm)
    val_ds = (WindowDataset(runs, samples.iloc[val_rows], window, eeg_norm, target_norm)
              if len(val_rows) else None)
    shape = ModelShape(window.window, *spec.eeg_shape, spec.n_targets,
                       grid=spec.mask if spec.target == "voxels" else None, history=window.history)
    seed_everything(cfg.seed)
    net = registry.build(model, shape, hp)
    out = Path(out_dir) if out_dir is not None else None
    provenance = {
        "software": f"bids_eeg2fmri {__version__}", "torch": torch.__version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "subjects": sorted(set(train_table["subject"])),
        "runs": sorted({runs[int(i)].key for i in train_table["run_index"].unique()}),
        "n_train": int(len(rows)), "n_val": int(len(val_rows)),
        "train_config": asdict(cfg), "lr": cfg.lr or entry.lr, "paper": entry.paper,
        "eeg_normalisation": "z-score per subject, channel and frequency (training volumes)",
        "target_normalisation": "z-score per target (training samples)"}
    fitted = FittedModel(model, net, hp, spec, window, eeg_norm, target_norm, provenance)
    if entry.closed_form:
        x = np.stack([train_ds[i]["x"].numpy() for i in range(len(train_ds))])
        y = np.stack([train_ds[i]["y"].numpy() for i in range(len(train_ds))])
        provenance.update(net.fit_closed_form(x, y, _inner_folds(train_table, window, spec.tr)))
        provenance["device"] = "cpu"
    else:
        meta = {k: v for k, v in fitted.state().items() if k != "model_state"}
        result: TrainResult = train(
            net, train_ds, val_ds, cfg, lr=entry.lr,
            checkpoint=None if out is None else out / CHECKPOINT_FILE, resume=resume,
            loss_log=None if out is None else out / LOSS_FILE, extra={"fitted": meta},
            on_epoch_end=on_epoch_end)
        fitted.history = result.history
        provenance.update(best_epoch=result.best_epoch, best_val_loss=result.best_val,
                          stopped_early=result.stopped_early, device=result.device,
                          resumed_from_epoch=result.resumed_from)
    net.to("cpu")
    if out is not None:
        fitted.save(out / MODEL_FILE)
    return fitted


def _inner_folds(table: pd.DataFrame, window: WindowSpec, tr: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leakage-safe inner folds of a training table: subjects when ≥ 3, else buffered time blocks."""
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
    """Predictions and scores of one model on one set of samples."""

    metrics: dict[str, float]
    pred: np.ndarray
    true: np.ndarray
    truth: np.ndarray | None
    samples: pd.DataFrame
    baselines: dict[str, np.ndarray]


def evaluate(fitted: FittedModel | str | os.PathLike, runs: Sequence[RunArrays],
             spec: DataSpec | None = None, *, samples: pd.DataFrame | None = None,
             rows: np.ndarray | None = None, device: str = "auto") -> Evaluation:
    """Score a fitted model (or a saved one) on samples of ``runs``, with the two baselines.

    The baselines are the **training-mean volume** (the mean of the training targets, stored in the
    model's normaliser) and the **subject-mean volume** (each evaluated subject's own mean over the
    evaluated samples — an oracle no EEG model is given, so beating it means predicting the
    fluctuations, not the subject's average).

    Returns
    -------
    Evaluation
        ``metrics`` holds ``<name>_<metric>`` for ``name`` in ``model``, ``train_mean``,
        ``subject_mean``; metrics are MSE, RMSE, mean temporal and spatial r, PSNR, SSIM (voxel
        targets; 3-voxel window, data range of the measured data), and with region labels the
        region-wise r and FC similarity; with noiseless truth, ``model_r_truth_region_<k>`` (r with the
        noiseless truth) and ``ceiling_region_<k>`` (r of the measurement with the truth).
    """
    if not isinstance(fitted, FittedModel):
        fitted = load_model(fitted)
    if samples is None:
        samples = index_samples(runs, fitted.window)
    if rows is not None:
        samples = samples.iloc[np.asarray(rows, dtype=int)]
    ds = fitted.dataset(runs, spec, samples)
    pred = fitted.target_norm.inverse(predict(fitted.model, ds, device=device))
    true = ds.targets()
    truth = ds.truth()
    train_mean = np.broadcast_to(fitted.target_norm.mean, true.shape)
    subject_mean = np.empty_like(true)
    subjects = samples["subject"].to_numpy()
    for s in np.unique(subjects):
        subject_mean[subjects == s] = true[subjects == s].mean(axis=0)
    baselines = {"train_mean": np.asarray(train_mean), "subject_mean": subject_mean}
    out: dict[str, float] = {}
    for name, p in {"model": pred, **baselines}.items():
        for key, value in _scores(p, true, truth, fitted.data_spec).items():
            out[f"{name}_{key}"] = value
    out.update(_ceilings(true, truth, fitted.data_spec))
    return Evaluation(out, pred, true, truth, samples.reset_index(drop=True), baselines)


def _scores(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
            spec: DataSpec) -> dict[str, float]:
    s = M.summarise(pred, true)
    if spec.target == "voxels" and spec.mask is not None and min(spec.mask.shape) >= M.SSIM_WINDOW:
        rng = float(true.max() - true.min())
        vol_p = np.zeros(spec.mask.shape)
        vol_t = np.zeros(spec.mask.shape)
        vals = []
        for p, t in zip(pred, true):
            vol_p[spec.mask], vol_t[spec.mask] = p, t
            vals.append(M.ssim3d(vol_p, vol_t, data_range=rng))
        s["ssim"] = float(np.mean(vals))
    if spec.labels is not None:
        labels = np.asarray(spec.labels)
        rp, ids = M.region_means(pred, labels)
        rt, _ = M.region_means(true, labels)
        for i, r in zip(ids, M.pearson_temporal(rp, rt)):
            s[f"r_region_{int(i)}"] = float(r)
        if len(ids) >= 3:
            s["fc_similarity"] = M.fc_similarity(rp, rt)
        if truth is not None:
            rg, _ = M.region_means(truth, labels)
            for i, r in zip(ids, M.pearson_temporal(rp, rg)):
                s[f"r_truth_region_{int(i)}"] = float(r)
    return s


def _ceilings(true: np.ndarray, truth: np.ndarray | None, spec: DataSpec) -> dict[str, float]:
    """Noise ceiling of each region's averaged measurement (needs the noiseless truth)."""
    if truth is None or spec.labels is None:
        return {}
    rt, ids = M.region_means(true, np.asarray(spec.labels))
    rg, _ = M.region_means(truth, np.asarray(spec.labels))
    return {f"ceiling_region_{int(i)}": float(c) for i, c in zip(ids, M.noise_ceiling(rg, rt))}


def device_name(name: str = "auto") -> str:
    """The device ``name`` resolves to, for reports."""
    return str(resolve_device(name))
