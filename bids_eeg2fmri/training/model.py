"""A fitted model of either direction: weights, normalisers, data spec, window and provenance.

:class:`FittedModel` carries everything needed to apply a model to new data; its
:class:`~.direction.Direction` says how. ``FittedModel.save``/:func:`load_model` round-trip it; the
saved layout of each direction is the one its earlier, direction-specific classes wrote, so model
folders written before stay readable.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.regions import VoxelPCA
from ..data.windows import DataSpec, RunArrays, index_samples
from ..errors import DataError
from .direction import DIRECTIONS, Direction
from ..modelfiles import WEIGHTS_FILE
from .saved import SavedModel, load_fitted_model, read_saved_state
from .trainer import predict

MODEL_FILE = WEIGHTS_FILE
CHECKPOINT_FILE = "checkpoint.pt"
LOSS_FILE = "losses.tsv"


@dataclass
class FittedModel(SavedModel):
    """A trained model with what it needs to be applied to new data.

    Attributes
    ----------
    input_norm, target_norm
        Normalisers of the model's input (EEG for EEG→fMRI, BOLD for fMRI→EEG) and target.
    input_pca
        fMRI→EEG with voxel-component inputs: the PCA turning model-grid voxel series (in the
        model's mask) into the model's inputs; None otherwise.
    """

    name: str
    model: torch.nn.Module
    hparams: dict[str, Any]
    data_spec: DataSpec
    window: Any
    input_norm: Any
    target_norm: Any
    direction: Direction
    provenance: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    input_pca: VoxelPCA | None = None

    def check(self, runs: Sequence[RunArrays], spec: DataSpec | None = None) -> None:
        """Raise :class:`DataError` when ``runs`` (described by ``spec``) do not fit the model."""
        if spec is not None:
            self.data_spec.check_compatible(spec)
        for run in runs:
            self.data_spec.check_run(run)

    def calibrated(self, runs: Sequence[RunArrays], samples: pd.DataFrame,
                   rows: np.ndarray | None) -> "FittedModel":
        """A copy whose per-subject normalisers also hold the subjects of ``rows`` (fitted on
        those rows only).

        With ``rows`` None, subjects the normalisers do not know get their own whole-recording
        statistics (the evaluation units of plain cross-validation).
        """
        other = copy.copy(self)
        other.input_norm = copy.deepcopy(self.input_norm)
        other.target_norm = copy.deepcopy(self.target_norm)
        per_subject = [other.input_norm] + ([other.target_norm]
                                            if self.direction.per_subject_targets else [])
        if rows is None:
            for i in np.unique(samples["run_index"]):
                for norm in per_subject:
                    norm.ensure(runs[int(i)])
            return other
        fresh = self.direction.fit_normalisers(runs, samples.iloc[np.asarray(rows, dtype=int)],
                                               self.window)
        for norm, new in zip(per_subject, fresh):
            norm.stats.update(new.stats)
        return other

    def dataset(self, runs: Sequence[RunArrays], samples: pd.DataFrame) -> Any:
        """``runs``' samples as the model's torch dataset."""
        return self.direction.dataset(runs, samples, self.window, self.input_norm,
                                      self.target_norm)

    def predict(self, runs: Sequence[RunArrays], spec: DataSpec | None = None,
                samples: pd.DataFrame | None = None, device: str = "auto") -> np.ndarray:
        """Predictions for ``samples`` of ``runs`` (default every sample), in sample-table order:
        EEG→fMRI ``(n, n_bold)`` BOLD in the original units; fMRI→EEG
        ``(n, horizon, n_channels, n_freqs)`` in the normalised units. Subjects the model has
        no statistics for are normalised with their own (:meth:`calibrated`)."""
        self.check(runs, spec)
        if samples is None:
            samples = index_samples(runs, self.window)
        ds = self.calibrated(runs, samples, None).dataset(runs, samples)
        return self.direction.outputs(predict(self.model, ds, device=device), self)

    def state(self) -> dict[str, Any]:
        d = self.direction
        parts = {d.norm_keys[0]: self.input_norm.state_dict(),
                 d.norm_keys[1]: self.target_norm.state_dict()}
        if d.name != "eeg2fmri":
            parts = {"direction": d.name, **parts,
                     "input_pca": None if self.input_pca is None else self.input_pca.state()}
        return self._state(d.file_format, **parts)


def load_model(path: str | os.PathLike) -> FittedModel:
    """Read a model saved by :meth:`FittedModel.save` (or a training checkpoint of
    :func:`~.core.fit`) of either direction."""
    raw = read_saved_state(path)
    tag = (raw.get("fitted") or raw).get("format") if isinstance(raw, dict) else None
    found = [d for d in DIRECTIONS.values() if d.file_format == tag]
    if not found:
        raise DataError("not a bids_eeg2fmri model file (unknown format)", path=path)
    d = found[0]
    state, net = load_fitted_model(path, d.file_format, f"bids_eeg2fmri {d.name} model file",
                                   direction=d.name)
    input_cls, target_cls = d.norm_classes
    return FittedModel(state["name"], net, state["hparams"], DataSpec.from_dict(state["data_spec"]),
                       d.window_class(**state["window"]),
                       input_cls.from_state(state[d.norm_keys[0]]),
                       target_cls.from_state(state[d.norm_keys[1]]), d, state["provenance"],
                       state.get("history", []),
                       VoxelPCA.from_state(state["input_pca"]) if state.get("input_pca") else None)
