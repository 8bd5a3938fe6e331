"""What every EEG→fMRI model shares: its input/output shape and the training interface.

A model sees a batch ``{"x": (B, window, n_channels, n_freqs, n_frames), "y": (B, n_targets),
"y_hist": (B, history, n_targets)}`` of normalised values. ``forward(x)`` is inference (EEG only);
``training_loss(batch)`` is what the trainer minimises, so models with teacher forcing, auxiliary
autoencoders or their own loss define it. ``set_epoch`` lets a model switch training phases
(pretraining an autoencoder first); ``warmup_epochs`` of them are excluded from early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ModelShape:
    """Sizes a model is built for; all derive from the data.

    Attributes
    ----------
    window, n_channels, n_freqs, n_frames
        EEG input ``(window, n_channels, n_freqs, n_frames)``.
    n_targets
        Output length (masked voxels or regions).
    grid
        3-D boolean mask of the model grid when targets are voxels (``grid[mask]`` order), else None.
    history
        Previous BOLD volumes in each batch (``y_hist``).
    horizon
        Output steps (TRs) per sample: 1 for EEG→fMRI; fMRI→EEG models predict ``horizon`` TRs of
        ``n_targets // horizon`` spectrogram bins each (``n_channels`` then counts input regions,
        ``n_freqs = n_frames = 1``).
    offset
        fMRI→EEG: position of the first predicted TR inside the window (``SequenceSpec.offset``);
        None (models saved before ``--hrf-lag`` applied to fMRI→EEG) means centred.
    """

    window: int
    n_channels: int
    n_freqs: int
    n_frames: int
    n_targets: int
    grid: np.ndarray | None = None
    history: int = 0
    horizon: int = 1
    offset: int | None = None

    @property
    def n_inputs(self) -> int:
        return self.window * self.n_channels * self.n_freqs * self.n_frames

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "n_channels": self.n_channels, "n_freqs": self.n_freqs,
                "n_frames": self.n_frames, "n_targets": self.n_targets, "history": self.history,
                "horizon": self.horizon,
                **({} if self.offset is None else {"offset": self.offset}),
                "grid": None if self.grid is None else self.grid.astype(bool).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelShape":
        d = dict(d)
        if d.get("grid") is not None:
            d["grid"] = np.asarray(d["grid"], dtype=bool)
        return cls(**d)


def raw_input(shape: ModelShape) -> bool:
    """True for raw EEG samples (:mod:`~bids_eeg2fmri.data.raw_eeg`): one "frequency" row with
    the samples of each TR as its frames; spectrograms and band power have several rows."""
    return shape.n_freqs == 1 and shape.n_frames > 1


class EEG2fMRIModel(nn.Module):
    """Base class: subclasses define ``forward(x)``; the rest has working defaults."""

    #: Epochs at the start that are a pretraining phase (not used for early stopping).
    warmup_epochs: int = 0

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.shape = shape

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared error of the inference path (override for teacher forcing etc.)."""
        return nn.functional.mse_loss(self(batch["x"]), batch["y"])

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer before each epoch (0-based); single-phase models ignore it."""

    #: Whether :meth:`shrink_output` can scale this model's predictions (the trainer calibrates
    #: only those; see :func:`~bids_eeg2fmri.training.shrinkage.calibrate`).
    shrinkable = False

    def shrink_output(self, scale: torch.Tensor) -> None:
        """Scale each target's predictions towards zero (the training mean of normalised targets)
        by ``scale`` (one per target) in the weights themselves; models that can set
        :attr:`shrinkable`."""
        raise TypeError(f"{type(self).__name__} cannot shrink its predictions")


class GridCodec(nn.Module):
    """Moves targets between the flat masked layout ``(B, n_targets)`` and the grid ``(B, X, Y, Z)``.

    Without a grid (region targets) the "grid" is the vector padded to ``(B, n, 1, 1)`` so that
    slice-wise and convolutional models still apply.
    """

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        if shape.grid is not None:
            mask = torch.as_tensor(np.asarray(shape.grid, dtype=bool))
        else:
            mask = torch.ones(shape.n_targets, 1, 1, dtype=torch.bool)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("flat_index", torch.nonzero(mask.reshape(-1)).squeeze(1),
                             persistent=False)
        self.grid_shape = tuple(mask.shape)

    def to_grid(self, y: torch.Tensor) -> torch.Tensor:
        out = y.new_zeros(y.shape[0], int(np.prod(self.grid_shape)))
        out[:, self.flat_index] = y
        return out.reshape(y.shape[0], *self.grid_shape)

    def from_grid(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(v.shape[0], -1)[:, self.flat_index]
