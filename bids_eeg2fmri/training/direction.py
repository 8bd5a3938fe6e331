"""What differs between the two translation directions, as values the one learning core reads.

A :class:`Direction` supplies how samples are cut (its window class), the torch dataset, the
normalisers of inputs and targets, the model's input/output shape, the units predictions are
returned in and the scores. :mod:`.core` (``fit``, ``evaluate``, ``cross_validate``) and
:mod:`.finetune` are written once against it; :data:`EEG2FMRI` and :data:`FMRI2EEG` are the two
instances, looked up by name with :func:`get_direction`.

- **EEG→fMRI**: an EEG spectrogram window in (:class:`~bids_eeg2fmri.data.windows.WindowSpec`), one
  BOLD volume out; EEG z-scored per subject, channel and frequency, BOLD z-scored per target with
  training statistics; predictions in the BOLD's original units.
- **fMRI→EEG**: a BOLD window of region series in
  (:class:`~bids_eeg2fmri.data.windows.SequenceSpec`), ``horizon`` TRs of spectrogram out; BOLD
  z-scored per subject and region, EEG per subject, channel and frequency. A subject without
  training EEG is scored in the units of its own EEG statistics (from its calibration block when
  fine-tuning, else its whole recording). Predictions stay in these z units, shaped
  ``(n, horizon, n_channels, n_freqs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import GroupConfig
from ..data.datasets import SequenceDataset, WindowDataset
from ..data.normalise import EEGNormaliser, RegionNormaliser, TargetNormaliser
from ..data.windows import DataSpec, RunArrays, SequenceSpec, WindowSpec, eeg_volumes
from ..errors import DataError, UsageError
from ..models import registry
from ..models.base import ModelShape
from .scores import eeg2fmri_scores, spectrogram_scores

Normalisers = tuple[Any, Any]


@dataclass(frozen=True)
class Direction:
    """One translation direction (see the module docstring).

    Attributes
    ----------
    name
        ``eeg2fmri`` or ``fmri2eeg`` (the registry's and the model card's word).
    file_format
        The ``format`` tag of its saved models.
    norm_keys
        Names of the input and target normalisers in the saved state.
    norm_classes
        Classes of the input and target normalisers.
    window_class
        Its sample-cutting specification.
    fit_normalisers
        ``(runs, training table, window) → (input_norm, target_norm)``.
    dataset
        ``(runs, samples, window, input_norm, target_norm) → Dataset``.
    model_shape
        ``(data spec, window) → ModelShape``.
    check
        Raises for data or windows this direction cannot train on.
    outputs
        ``(normalised predictions, fitted model) → predictions in the evaluation units``.
    train_mean
        ``(fitted model, measured targets) → the training-mean baseline's predictions``.
    score
        ``(pred, true, truth, baselines, fitted, samples, options)`` → ``(metrics, per-subject
        table)``;
        ``metrics`` always has ``mse``, ``r``, ``train_mean_mse`` and ``subject_mean_mse``
        under the names :attr:`headline` gives.
    headline
        Metric names of ``mse``, ``r``, ``train_mean_mse`` and ``subject_mean_mse``.
    per_subject_targets
        Whether the target normaliser holds per-subject statistics (calibration extends them).
    notes
        Provenance lines (how inputs and targets are normalised).
    """

    name: str
    file_format: Any
    norm_keys: tuple[str, str]
    norm_classes: tuple[type, type]
    window_class: type
    fit_normalisers: Callable[[Sequence[RunArrays], pd.DataFrame, Any], Normalisers]
    dataset: Callable[..., Any]
    model_shape: Callable[[DataSpec, Any], ModelShape]
    check: Callable[[str, DataSpec, Any], None]
    outputs: Callable[[np.ndarray, Any], np.ndarray]
    train_mean: Callable[[Any, np.ndarray], np.ndarray]
    score: Callable[..., tuple[dict[str, float], pd.DataFrame]]
    headline: dict[str, str]
    per_subject_targets: bool
    notes: dict[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple:
        # Pickled by name (its functions include lambdas): worker processes get the same value.
        return get_direction, (self.name,)

    def default_window(self, spec: DataSpec, models: Sequence[str] = ("ridge",),
                       **kwargs: Any) -> Any:
        """The direction's default window; EEG→fMRI: ~20 s at the data's TR with the largest BOLD
        history any of ``models`` reads; fMRI→EEG: the seed's 50 TRs in, 5 out."""
        if self.window_class is WindowSpec:
            history = max(registry.entry(m, self.name).history for m in models)
            return WindowSpec.from_seconds(spec.tr, history=history, **kwargs)
        return SequenceSpec(**kwargs)

    def window_from(self, group: GroupConfig, spec: DataSpec, models: Sequence[str]) -> Any:
        """The window the group options ask for: EEG→fMRI ``--window`` seconds (converted to TRs),
        fMRI→EEG ``--window-trs``/``--horizon-trs``; both censor at ``--fd-threshold``.
        ``--hrf-lag`` seconds (rounded to TRs): EEG→fMRI, TRs between the EEG window's end and the
        target volume; fMRI→EEG, TRs the BOLD window runs on past the predicted EEG (0: centred)."""
        fd = group.fd_threshold or None
        lag = int(round(group.hrf_lag / spec.tr))
        if self.window_class is WindowSpec:
            return self.default_window(spec, models, window_s=group.window_s, fd_threshold=fd,
                                       lag=lag)
        return SequenceSpec(window=group.window_trs, horizon=group.horizon_trs, fd_threshold=fd,
                            lag=lag if group.hrf_lag > 0 else None)


# ----------------------------------------------------------------------------- EEG → fMRI
def _eeg2fmri_normalisers(runs: Sequence[RunArrays], table: pd.DataFrame,
                          window: WindowSpec) -> Normalisers:
    eeg_norm = EEGNormaliser().fit(runs, {
        int(i): eeg_volumes(g["volume"].to_numpy(), window) for i, g in table.groupby("run_index")})
    target_norm = TargetNormaliser().fit(
        np.asarray(runs[int(i)].bold[np.sort(g["volume"].to_numpy())])
        for i, g in table.groupby("run_index"))
    return eeg_norm, target_norm


def _eeg2fmri_shape(spec: DataSpec, window: WindowSpec) -> ModelShape:
    return ModelShape(window.window, *spec.eeg_shape, spec.n_bold,
                      grid=spec.mask if spec.target == "voxels" else None, history=window.history)


def _eeg2fmri_check(model: str, spec: DataSpec, window: WindowSpec) -> None:
    entry = registry.entry(model, "eeg2fmri")
    if entry.history and window.history < 1:
        # The model decodes over previous volumes; it uses as many as the window provides.
        raise UsageError(f"model {model} reads previous BOLD volumes: the window needs a history "
                         f"of at least 1 volume (default {entry.history})")


def _eeg2fmri_score(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                    baselines: dict[str, np.ndarray], fitted: Any, samples: pd.DataFrame,
                    *, domain: str = "fluctuations", roi_labels: np.ndarray | None = None,
                    **_: Any) -> tuple[dict[str, float], pd.DataFrame]:
    return (eeg2fmri_scores(pred, true, truth, baselines, fitted.data_spec, domain=domain,
                            roi_labels=roi_labels), pd.DataFrame())


EEG2FMRI = Direction(
    name="eeg2fmri", file_format=1, norm_keys=("eeg_norm", "target_norm"),
    norm_classes=(EEGNormaliser, TargetNormaliser), window_class=WindowSpec,
    fit_normalisers=_eeg2fmri_normalisers, dataset=WindowDataset, model_shape=_eeg2fmri_shape,
    check=_eeg2fmri_check, outputs=lambda z, fitted: fitted.target_norm.inverse(z),
    train_mean=lambda fitted, true: np.asarray(np.broadcast_to(fitted.target_norm.mean, true.shape)),
    score=_eeg2fmri_score,
    headline={"mse": "model_mse", "r": "model_r_temporal", "train_mean_mse": "train_mean_mse",
              "subject_mean_mse": "subject_mean_mse"},
    per_subject_targets=False,
    notes={"eeg_normalisation": "z-score per subject, channel and frequency (training volumes)",
           "target_normalisation": "z-score per target (training samples)"})


# ----------------------------------------------------------------------------- fMRI → EEG
def window_volumes(table: pd.DataFrame, spec: SequenceSpec) -> dict[int, np.ndarray]:
    """Per run index, the BOLD volumes the windows of ``table``'s samples read."""
    out = {}
    for i, g in table.groupby("run_index"):
        start = spec.window_start(g["volume"].to_numpy())
        out[int(i)] = np.unique((start[:, None] + np.arange(spec.window)[None]).ravel())
    return out


def _target_volumes(table: pd.DataFrame, spec: SequenceSpec) -> dict[int, np.ndarray]:
    return {int(i): np.unique((g["volume"].to_numpy()[:, None]
                               + np.arange(spec.horizon)[None]).ravel())
            for i, g in table.groupby("run_index")}


def _fmri2eeg_normalisers(runs: Sequence[RunArrays], table: pd.DataFrame,
                          window: SequenceSpec) -> Normalisers:
    return (RegionNormaliser().fit(runs, window_volumes(table, window)),
            EEGNormaliser().fit(runs, _target_volumes(table, window)))


def fmri2eeg_shape(spec: DataSpec, window: SequenceSpec) -> ModelShape:
    """Sizes of an fMRI→EEG model for ``spec`` (regions in, channels × frequencies out)."""
    bins = len(spec.channels) * len(spec.frequencies)
    return ModelShape(window.window, spec.n_bold, 1, 1, window.horizon * bins,
                      horizon=window.horizon, offset=window.offset)


def _fmri2eeg_check(model: str, spec: DataSpec, window: SequenceSpec) -> None:
    if spec.target != "regions":
        raise DataError("fMRI→EEG models read region series (or voxel components): build the "
                        "DataSpec with target='regions'")


def _fmri2eeg_outputs(z: np.ndarray, fitted: Any) -> np.ndarray:
    spec = fitted.data_spec
    return z.reshape(len(z), fitted.window.horizon, len(spec.channels), len(spec.frequencies))


def _fmri2eeg_score(pred: np.ndarray, true: np.ndarray, truth: np.ndarray | None,
                    baselines: dict[str, np.ndarray], fitted: Any, samples: pd.DataFrame, *,
                    bands: dict[str, tuple[float, float]] | None = None,
                    groups: dict[str, list[str]] | None = None, **_: Any
                    ) -> tuple[dict[str, float], pd.DataFrame]:
    spec = fitted.data_spec
    groups = groups or {"all": list(spec.channels)}
    subj = samples["subject"].to_numpy()
    # Each sample's dB level: the EEG statistics its targets were z-scored with.
    stats = fitted.target_norm.stats
    levels = (np.stack([stats[s][0] for s in subj]), np.stack([stats[s][1] for s in subj]))
    metrics = spectrogram_scores(pred, true, truth, spec, bands, groups, levels)
    for name, p in baselines.items():
        b = spectrogram_scores(np.asarray(p, np.float32), true, None, spec, bands, groups, levels)
        metrics.update({f"{name}_{k}": v for k, v in b.items()})
    per = []
    for s in dict.fromkeys(subj):
        sel = subj == s
        per.append({"subject": s, "n": int(sel.sum()),
                    **spectrogram_scores(pred[sel], true[sel],
                                         None if truth is None else truth[sel], spec, bands, groups,
                                         (levels[0][sel], levels[1][sel]))})
    return metrics, pd.DataFrame(per)


FMRI2EEG = Direction(
    name="fmri2eeg", file_format="fmri2eeg-1", norm_keys=("bold_norm", "eeg_norm"),
    norm_classes=(RegionNormaliser, EEGNormaliser), window_class=SequenceSpec,
    fit_normalisers=_fmri2eeg_normalisers, dataset=SequenceDataset, model_shape=fmri2eeg_shape,
    check=_fmri2eeg_check, outputs=_fmri2eeg_outputs,
    # Targets are z-scored per subject: the training mean predicts 0.
    train_mean=lambda fitted, true: np.zeros_like(true), score=_fmri2eeg_score,
    headline={"mse": "mse", "r": "r_overall", "train_mean_mse": "train_mean_mse",
              "subject_mean_mse": "subject_mean_mse"},
    per_subject_targets=True,
    notes={"input_normalisation": "z-score per subject and region (training volumes)",
           "target_normalisation": "z-score per subject, channel and frequency (training "
                                   "volumes), STFT frames averaged per TR"})

DIRECTIONS = {d.name: d for d in (EEG2FMRI, FMRI2EEG)}


def get_direction(direction: str | Direction) -> Direction:
    """The :class:`Direction` called ``direction`` (a Direction passes through)."""
    if isinstance(direction, Direction):
        return direction
    try:
        return DIRECTIONS[direction]
    except KeyError:
        raise UsageError(f"unknown direction {direction!r}; choose from "
                         f"{', '.join(DIRECTIONS)}") from None
