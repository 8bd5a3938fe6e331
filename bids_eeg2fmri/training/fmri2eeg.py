"""fMRI→EEG: fit, evaluate, cross-validate and apply spectrogram models.

The same pieces as the EEG→fMRI API (:mod:`.api`), the other way round: runs of
:class:`~bids_eeg2fmri.data.windows.RunArrays` whose ``bold`` holds the input region series and whose
``eeg`` holds the spectrogram targets, described by the same
:class:`~bids_eeg2fmri.data.windows.DataSpec` (``target="regions"``); samples cut by a
:class:`~bids_eeg2fmri.data.windows.SequenceSpec`; the shared splits, trainer and metrics.

Units. Inputs are z-scored per subject and region (training volumes; an unseen subject with its own
BOLD). Targets are the spectrogram with STFT frames averaged per TR, z-scored per subject, channel
and frequency (:class:`~bids_eeg2fmri.data.normalise.EEGNormaliser`) with training statistics. A
subject without training EEG is scored in the units of its own EEG statistics — from its
calibration (fine-tuning) block in :mod:`.finetune`, or from its whole recording in plain
cross-validation. Pearson r per bin or cell is unchanged by these per-subject affine maps; MSE is in
these z units. Synthesised spectrograms are mapped back to dB with the subject's statistics when it
has any, else the mean of the training subjects'.
"""

from __future__ import annotations

import copy
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
from ..bids.derivatives import atomic_path, atomic_write_text, build_path, write_sidecar
from ..data.datasets import SequenceDataset
from ..data.normalise import EEGNormaliser, RegionNormaliser
from ..data.regions import VoxelPCA
from ..data.splits import Fold, make_folds, validation_blocks
from ..data.windows import DataSpec, RunArrays, SequenceSpec, index_samples
from ..errors import DataError, UsageError
from ..models import registry
from ..models.base import ModelShape
from .api import CHECKPOINT_FILE, LOSS_FILE, MODEL_FILE, _inner_folds
from .trainer import (SavedModel, TrainConfig, TrainResult, load_fitted_model, predict,
                      resolve_device, seed_everything, train)

DIRECTION = "fmri2eeg"
FORMAT = "fmri2eeg-1"
DEFAULT_BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0),
                 "beta": (13.0, 30.0)}


@dataclass
class SpectrogramModel(SavedModel):
    """A trained fMRI→EEG model with what it needs to be applied to new BOLD."""

    name: str
    model: torch.nn.Module
    hparams: dict[str, Any]
    data_spec: DataSpec
    window: SequenceSpec
    bold_norm: RegionNormaliser
    eeg_norm: EEGNormaliser
    provenance: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    #: Voxel PCA turning model-grid voxel series (in the model's mask) into the model's inputs;
    #: None for region inputs.
    input_pca: VoxelPCA | None = None

    @property
    def bins(self) -> tuple[int, int]:
        """``(n_channels, n_freqs)`` of one predicted TR."""
        return len(self.data_spec.channels), len(self.data_spec.frequencies)

    def check(self, runs: Sequence[RunArrays], spec: DataSpec | None = None) -> None:
        """Raise :class:`DataError` when ``runs`` do not fit the model's regions and spectrogram."""
        if spec is not None:
            self.data_spec.check_compatible(spec)
        for run in runs:
            self.data_spec.check_run(run)

    def calibrated(self, runs: Sequence[RunArrays], samples: pd.DataFrame,
                   rows: np.ndarray | None) -> "SpectrogramModel":
        """A copy whose normalisers also hold the subjects of ``rows`` (fitted on those rows only).

        With ``rows`` None, subjects unknown to the target normaliser get their own whole-recording
        statistics (the evaluation units of plain cross-validation).
        """
        other = copy.copy(self)
        other.bold_norm = copy.deepcopy(self.bold_norm)
        other.eeg_norm = copy.deepcopy(self.eeg_norm)
        if rows is None:
            for i in np.unique(samples["run_index"]):
                run = runs[int(i)]
                if run.subject not in other.eeg_norm.stats:
                    other.eeg_norm.ensure(run)
            return other
        bold_norm, eeg_norm = _fit_normalisers(runs, samples.iloc[np.asarray(rows, dtype=int)],
                                               self.window)
        other.bold_norm.stats.update(bold_norm.stats)
        other.eeg_norm.stats.update(eeg_norm.stats)
        return other

    def dataset(self, runs: Sequence[RunArrays], samples: pd.DataFrame) -> SequenceDataset:
        return SequenceDataset(runs, samples, self.window, self.bold_norm, self.eeg_norm)

    def predict(self, runs: Sequence[RunArrays], samples: pd.DataFrame,
                device: str = "auto") -> np.ndarray:
        """Normalised predictions ``(n_samples, horizon, n_channels, n_freqs)``."""
        ds = self.dataset(runs, samples)
        return predict(self.model, ds, device=device).reshape(len(ds), self.window.horizon,
                                                              *self.bins)

    def state(self) -> dict[str, Any]:
        return self._state(FORMAT, direction=DIRECTION, bold_norm=self.bold_norm.state_dict(),
                           eeg_norm=self.eeg_norm.state_dict(),
                           input_pca=None if self.input_pca is None else self.input_pca.state())


def load_spectrogram_model(path: str | os.PathLike) -> SpectrogramModel:
    """Read a model written by :meth:`SpectrogramModel.save` or a training checkpoint of :func:`fit`."""
    state, net = load_fitted_model(path, FORMAT, "bids_eeg2fmri fMRI→EEG model file",
                                   direction=DIRECTION)
    return SpectrogramModel(state["name"], net, state["hparams"],
                            DataSpec.from_dict(state["data_spec"]), SequenceSpec(**state["window"]),
                            RegionNormaliser.from_state(state["bold_norm"]),
                            EEGNormaliser.from_state(state["eeg_norm"]), state["provenance"],
                            state.get("history", []),
                            VoxelPCA.from_state(state["input_pca"]) if state.get("input_pca")
                            else None)


def _window_volumes(table: pd.DataFrame, spec: SequenceSpec) -> dict[int, np.ndarray]:
    out = {}
    for i, g in table.groupby("run_index"):
        start = spec.window_start(g["volume"].to_numpy())
        out[int(i)] = np.unique((start[:, None] + np.arange(spec.window)[None]).ravel())
    return out


def fit_input_pca(runs: Sequence[RunArrays], samples: pd.DataFrame, rows: np.ndarray,
                  window: SequenceSpec, n_components: int) -> VoxelPCA:
    """Voxel PCA fitted on exactly the volumes the samples ``rows`` read (their BOLD windows),
    so a held-out subject or test block never shapes the components."""
    from ..data.regions import fit_voxel_pca

    table = samples.iloc[np.asarray(rows, dtype=int)]
    return fit_voxel_pca(runs, _window_volumes(table, window), n_components)


def _target_volumes(table: pd.DataFrame, spec: SequenceSpec) -> dict[int, np.ndarray]:
    return {int(i): np.unique((g["volume"].to_numpy()[:, None]
                               + np.arange(spec.horizon)[None]).ravel())
            for i, g in table.groupby("run_index")}


def _fit_normalisers(runs: Sequence[RunArrays], table: pd.DataFrame,
                     spec: SequenceSpec) -> tuple[RegionNormaliser, EEGNormaliser]:
    return (RegionNormaliser().fit(runs, _window_volumes(table, spec)),
            EEGNormaliser().fit(runs, _target_volumes(table, spec)))


def model_shape(spec: DataSpec, window: SequenceSpec) -> ModelShape:
    """Sizes of an fMRI→EEG model for ``spec`` (regions in, channels × frequencies out)."""
    bins = len(spec.channels) * len(spec.frequencies)
    return ModelShape(window.window, spec.n_targets, 1, 1, window.horizon * bins,
                      horizon=window.horizon)


def fit(runs: Sequence[RunArrays], spec: DataSpec, model: str = "rnn-seq2seq", *,
        window: SequenceSpec | None = None, samples: pd.DataFrame | None = None,
        rows: np.ndarray | None = None, val_rows: np.ndarray | None = None,
        hparams: dict[str, Any] | None = None, train_config: TrainConfig | None = None,
        out_dir: str | os.PathLike | None = None, resume: bool = False,
        init: SpectrogramModel | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> SpectrogramModel:
    """Train fMRI→EEG model ``model`` on the samples ``rows``.

    Parameters
    ----------
    runs, spec
        Region BOLD (input) and spectrogram (target) per run, and their description.
    model
        A registered ``fmri2eeg`` model (``rnn-seq2seq``, ``ridge``).
    window
        Sample cutting; default ``SequenceSpec()`` (50 TRs in, 5 centred TRs out).
    samples, rows
        Sample table (built when None) and the training rows (all when None).
    val_rows
        Early-stopping rows; default the buffered last 20 % of every training run. An empty array
        trains for the full number of epochs.
    hparams, train_config, out_dir, resume, on_epoch_end
        As :func:`bids_eeg2fmri.training.fit`.
    init
        A fitted model to start from (fine-tuning): its weights and hyper-parameters; its
        normalisers are kept and extended by the subjects of ``rows`` (fitted on those rows). A
        closed-form model is refitted on the residual of ``init``'s predictions, i.e. ridge shrunk
        towards ``init``'s weights instead of towards zero.

    Returns
    -------
    SpectrogramModel
    """
    cfg = train_config or TrainConfig()
    entry = registry.entry(model, DIRECTION)
    window = window or (init.window if init is not None else SequenceSpec())
    if spec.target != "regions":
        raise DataError("fMRI→EEG models read region series (or voxel components): build the "
                        "DataSpec with target='regions'")
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
    if val_rows is None:
        if entry.closed_form:
            val_rows = np.empty(0, dtype=int)
        else:
            rows, val_rows = validation_blocks(samples, rows, window, spec.tr)
    val_rows = np.asarray(val_rows, dtype=int)
    table = samples.iloc[rows]
    bold_norm, eeg_norm = _fit_normalisers(runs, table, window)
    if init is not None:
        merged = init.calibrated(runs, samples, rows)
        bold_norm, eeg_norm = merged.bold_norm, merged.eeg_norm
        hp = dict(init.hparams)
    else:
        hp = registry.resolve_hparams(model, hparams, DIRECTION)
    train_ds = SequenceDataset(runs, table, window, bold_norm, eeg_norm)
    val_ds = SequenceDataset(runs, samples.iloc[val_rows], window, bold_norm, eeg_norm) \
        if len(val_rows) else None
    seed_everything(cfg.seed)
    net = copy.deepcopy(init.model) if init is not None else \
        registry.build(model, model_shape(spec, window), hp, direction=DIRECTION)
    provenance = {
        "software": f"bids_eeg2fmri {__version__}", "torch": torch.__version__,
        "python": platform.python_version(), "direction": DIRECTION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "subjects": sorted(set(table["subject"])),
        "runs": sorted({runs[int(i)].key for i in table["run_index"].unique()}),
        "n_train": int(len(rows)), "n_val": int(len(val_rows)), "train_config": asdict(cfg),
        "lr": cfg.lr or entry.lr, "paper": entry.paper,
        "finetuned_from": None if init is None else init.provenance.get("subjects"),
        "input_normalisation": "z-score per subject and region (training volumes)",
        "target_normalisation": "z-score per subject, channel and frequency (training volumes), "
                                "STFT frames averaged per TR"}
    fitted = SpectrogramModel(model, net, hp, spec, window, bold_norm, eeg_norm, provenance)
    out = Path(out_dir) if out_dir is not None else None
    if entry.closed_form:
        x = train_ds.inputs()
        y = np.stack([train_ds[i]["y"].numpy() for i in range(len(train_ds))])
        prior = None
        if init is not None:
            # Fine-tuning a ridge: fit the residual, then add the base weights back.
            prior = (init.model.weight.clone(), init.model.bias.clone())
            with torch.no_grad():
                y = y - init.model(torch.as_tensor(x)).numpy()
        provenance.update(net.fit_closed_form(x, y, _inner_folds(table, window, spec.tr)))
        if prior is not None:
            net.weight += prior[0]
            net.bias += prior[1]
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
                          stopped_early=result.stopped_early, device=result.device)
    net.to("cpu").eval()
    if out is not None:
        fitted.save(out / MODEL_FILE)
    return fitted


@dataclass
class SpectrogramEvaluation:
    """Scores of one model on one set of samples, overall and per subject."""

    metrics: dict[str, float]
    per_subject: pd.DataFrame
    pred: np.ndarray
    true: np.ndarray
    truth: np.ndarray | None
    samples: pd.DataFrame
    cells: list[str]


def score(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None, spec: DataSpec,
          bands: dict[str, tuple[float, float]], groups: dict[str, list[str]]) -> dict[str, float]:
    """Metrics of normalised spectrogram predictions.

    Parameters
    ----------
    pred, true, truth
        ``(n, horizon, n_channels, n_freqs)``; ``truth`` (noiseless) may be None.

    Returns
    -------
    dict
        ``mse``; ``r_overall`` (Pearson r over every TR × channel × frequency, the seed's headline
        number); ``r_bins`` (mean over bins of the temporal r); per cell ``<band>_<group>``:
        ``r_<cell>`` (temporal r of the cell's power), and with ``truth`` ``ceiling_<cell>`` (r of
        the noiseless with the measured power) and ``r_truth_<cell>``.
    """
    n_c, n_f = pred.shape[-2:]
    p = pred.reshape(-1, n_c, n_f)
    t = true.reshape(-1, n_c, n_f)
    out = {"mse": M.mse(p, t),
           "r_overall": float(M.pearson_temporal(p.reshape(-1, 1), t.reshape(-1, 1))[0]),
           "r_bins": M.nanmean(M.pearson_temporal(p.reshape(len(p), -1), t.reshape(len(t), -1)))}
    pc, names = M.spectral_cells(p, np.asarray(spec.frequencies), spec.channels, bands, groups)
    tc, _ = M.spectral_cells(t, np.asarray(spec.frequencies), spec.channels, bands, groups)
    for name, r in zip(names, M.pearson_temporal(pc, tc)):
        out[f"r_{name}"] = float(r)
    if truth is not None:
        gc, _ = M.spectral_cells(truth.reshape(-1, n_c, n_f), np.asarray(spec.frequencies),
                                 spec.channels, bands, groups)
        for name, c, r in zip(names, M.noise_ceiling(gc, tc), M.pearson_temporal(pc, gc)):
            out[f"ceiling_{name}"] = float(c)
            out[f"r_truth_{name}"] = float(r)
    return out


def evaluate(fitted: SpectrogramModel, runs: Sequence[RunArrays], *,
             samples: pd.DataFrame | None = None, rows: np.ndarray | None = None,
             bands: dict[str, tuple[float, float]] | None = None,
             groups: dict[str, list[str]] | None = None, device: str = "auto") -> SpectrogramEvaluation:
    """Score ``fitted`` on samples of ``runs`` (see :func:`score`), pooled and per subject.

    Subjects the model has no EEG statistics for are scored in units of their own EEG (see the
    module docstring); pass a :meth:`SpectrogramModel.calibrated` model to use calibration rows.
    """
    fitted.check(runs)
    bands = bands or DEFAULT_BANDS
    groups = groups or {"all": list(fitted.data_spec.channels)}
    if samples is None:
        samples = index_samples(runs, fitted.window)
    if rows is not None:
        samples = samples.iloc[np.asarray(rows, dtype=int)]
    samples = samples.reset_index(drop=True)
    fitted = fitted.calibrated(runs, samples, None)
    ds = fitted.dataset(runs, samples)
    pred = fitted.predict(runs, samples, device=device)
    true = ds.targets()
    truth = ds.truth()
    metrics = score(pred, true, truth, fitted.data_spec, bands, groups)
    per = []
    subj = samples["subject"].to_numpy()
    for s in dict.fromkeys(subj):
        sel = subj == s
        per.append({"subject": s, "n": int(sel.sum()),
                    **score(pred[sel], true[sel], None if truth is None else truth[sel],
                            fitted.data_spec, bands, groups)})
    cells = [k[2:] for k in metrics if k.startswith("r_") and k not in ("r_overall", "r_bins")
             and not k.startswith("r_truth_")]
    return SpectrogramEvaluation(metrics, pd.DataFrame(per), pred, true, truth, samples, cells)


@dataclass
class SpectrogramCV:
    """Cross-validation results: one row per model and fold, and per model, fold and subject."""

    table: pd.DataFrame
    per_subject: pd.DataFrame
    folds: list[Fold]

    def summary(self) -> pd.DataFrame:
        """Mean over folds of every numeric column, per model."""
        return self.table.drop(columns=["fold"]).groupby("model", sort=False).mean(numeric_only=True)


def cross_validate(runs: Sequence[RunArrays], spec: DataSpec, models: Sequence[str], *,
                   regime: str = "kfold", k: int = 5, window: SequenceSpec | None = None,
                   train_config: TrainConfig | None = None,
                   hparams: dict[str, dict[str, Any]] | None = None, early_stopping: bool = True,
                   bands: dict[str, tuple[float, float]] | None = None,
                   groups: dict[str, list[str]] | None = None,
                   out_dir: str | os.PathLike | None = None, seed: int = 0) -> SpectrogramCV:
    """Fit and score every model on every fold (default the seed's 5-fold CV over subjects).

    Parameters
    ----------
    regime, k
        As :func:`bids_eeg2fmri.data.splits.make_folds` (``kfold``, ``loso``, ``blocked``,
        ``split``); ``blocked`` uses :meth:`SequenceSpec.min_buffer`.
    early_stopping
        Hold out the buffered end of every training run for early stopping; False trains the full
        number of epochs on all training samples.
    out_dir
        ``<model>/<fold>/`` checkpoints and ``cv_metrics.tsv``.
    """
    window = window or SequenceSpec()
    samples = index_samples(runs, window)
    folds = make_folds(samples, regime, spec=window, tr=spec.tr, k=k, seed=seed)
    out = Path(out_dir) if out_dir is not None else None
    records, per = [], []
    for name in models:
        for fold in folds:
            val = None if early_stopping else np.empty(0, dtype=int)
            if len(fold.val):
                val = fold.val
            fitted = fit(runs, spec, name, window=window, samples=samples, rows=fold.train,
                         val_rows=val, hparams=(hparams or {}).get(name), train_config=train_config,
                         out_dir=None if out is None else out / name / fold.name)
            ev = evaluate(fitted, runs, samples=samples, rows=fold.test, bands=bands, groups=groups)
            records.append({"model": name, "fold": fold.name, "n_train": len(fold.train),
                            "n_test": len(fold.test), **ev.metrics})
            per.append(ev.per_subject.assign(model=name, fold=fold.name))
    table = pd.DataFrame.from_records(records)
    if out is not None:
        atomic_write_text(out / "cv_metrics.tsv", table.to_csv(sep="\t", index=False, na_rep="n/a"))
    return SpectrogramCV(table, pd.concat(per, ignore_index=True), folds)


# --------------------------------------------------------------------------- reconstruction
def reconstruct(fitted: SpectrogramModel, run: RunArrays, *, device: str = "auto") -> np.ndarray:
    """Spectrogram of every retained TR of ``run`` from its BOLD alone, in the EEG's units (dB).

    The window slides one TR at a time; each position predicts ``horizon`` TRs, and each TR's
    prediction is the average of all windows that predict it (``horizon`` of them inside the run).
    Near the run's edges and next to dummy scans the window reaches volumes that do not exist or are
    not retained; those are filled with the subject's mean (0 after normalisation), so every
    retained TR is covered.

    Returns
    -------
    ndarray
        ``(n_volumes, n_channels, n_freqs)``; NaN for volumes that are not retained.
    """
    fitted.check([run])
    w, h, off = fitted.window.window, fitted.window.horizon, fitted.window.offset
    n = run.n_volumes
    bold_norm = copy.deepcopy(fitted.bold_norm)
    bold_norm.ensure(run)
    z = bold_norm.transform(np.asarray(run.bold[:], dtype=np.float32), run.subject)
    z[~run.retained] = 0.0
    padded = np.zeros((n + 2 * w, z.shape[1]), dtype=np.float32)
    padded[w:w + n] = z
    anchors = np.arange(-(h - 1), n)
    keep = np.zeros_like(anchors, dtype=bool)
    for j in range(h):
        idx = anchors + j
        ok = (idx >= 0) & (idx < n)
        keep[ok] |= run.retained[idx[ok]]
    anchors = anchors[keep]
    starts = anchors - off + w
    x = np.stack([padded[s:s + w] for s in starts])
    dev = resolve_device(device)
    net = fitted.model.to(dev).eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[i:i + 256]).to(dev)).float().cpu().numpy()
                               for i in range(0, len(x), 256)])
    pred = pred.reshape(len(anchors), h, *fitted.bins)
    total = np.zeros((n, *fitted.bins))
    count = np.zeros(n)
    for j in range(h):
        idx = anchors + j
        ok = (idx >= 0) & (idx < n)
        np.add.at(total, idx[ok], pred[ok, j])
        np.add.at(count, idx[ok], 1)
    out = np.full((n, *fitted.bins), np.nan)
    cover = run.retained & (count > 0)
    out[cover] = total[cover] / count[cover, None, None]
    mean, std = _eeg_stats(fitted.eeg_norm, run.subject)
    return out * std + mean


def _eeg_stats(norm: EEGNormaliser, subject: str) -> tuple[np.ndarray, np.ndarray]:
    if subject in norm.stats:
        return norm.stats[subject]
    # A subject without EEG (fMRI only): the average training subject's spectral baseline.
    means = np.stack([m for m, _ in norm.stats.values()])
    stds = np.stack([s for _, s in norm.stats.values()])
    return means.mean(axis=0), stds.mean(axis=0)


def write_synth_spectrogram(out_dir: str | os.PathLike, source: Any, fitted: SpectrogramModel,
                            run: RunArrays, *, n_frames: int | None = None,
                            frame_times: np.ndarray | None = None, scale: str = "log-power",
                            device: str = "auto") -> Path:
    """Reconstruct ``run``'s spectrogram and write ``<src>_desc-synth_spectrogram.h5`` (+ JSON).

    The file has the measured ``desc-stft_spectrogram.h5``'s datasets and axes (written by
    :func:`bids_eeg2fmri.eeg.pipeline.write_spectrogram_h5`): ``spectrogram`` (volume, channel,
    frequency, frame), ``frequencies``, ``frame_times``, ``channels``, ``volume_indices``,
    ``volume_onsets``. The model predicts power per TR, so the ``n_frames`` frames of a TR (default
    the model's ``DataSpec.n_frames``) hold the same values; rows are the retained volumes.

    Parameters
    ----------
    source
        The BOLD run's path or entities (names the output).
    """
    from ..eeg.pipeline import SpectralResult, write_spectrogram_h5

    spec = reconstruct(fitted, run, device=device)
    vols = np.flatnonzero(np.isfinite(spec).all(axis=(1, 2)))
    n_frames = int(n_frames or fitted.data_spec.n_frames)
    tr = fitted.data_spec.tr
    if frame_times is None:
        frame_times = (np.arange(n_frames) + 0.5) * tr / n_frames
    data = np.repeat(spec[vols][..., None], n_frames, axis=-1).astype(np.float32)
    res = SpectralResult(
        spectrogram=data, frequencies=np.asarray(fitted.data_spec.frequencies),
        frame_times=np.asarray(frame_times, dtype=float), channels=list(fitted.data_spec.channels),
        spec_volumes=vols, spec_onsets=vols * tr, bandpower_columns=[],
        bandpower=np.empty((0, 0)), bandpower_volumes=vols, bandpower_onsets=vols * tr,
        metadata={"RepetitionTime": tr})
    path = build_path(out_dir, source, suffix="spectrogram", extension=".h5", datatype="eeg",
                      desc="synth")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        meta = write_spectrogram_h5(tmp, res, scale)
    meta.update({
        "Description": f"EEG spectrogram synthesised from BOLD by the fMRI→EEG model "
                      f"{fitted.name} (window {fitted.window.window} TRs, {fitted.window.horizon} "
                      "centred TRs per window, overlapping predictions averaged)",
        "VolumeOnsets": (vols * tr).tolist(),
        "Datasets": {**meta["Datasets"], "volume_onsets": "s from the first BOLD volume onset",
                     "spectrogram": f"float32 {scale}; frames of one TR are equal (per-TR model)"},
        "Model": {"Name": fitted.name, "Window": fitted.window.window,
                  "Horizon": fitted.window.horizon, "Hyperparameters": fitted.hparams,
                  "TrainedOn": fitted.provenance.get("subjects"),
                  "Units": ("subject's own EEG statistics" if run.subject in fitted.eeg_norm.stats
                            else "mean EEG statistics of the training subjects")}})
    write_sidecar(path, meta)
    return path
