"""Fitted models on disk: the state both directions' fitted-model classes share and save
(``model.safetensors``, data only: :mod:`bids_eeg2fmri.modelfiles`), and reading it back from a
model file or a training checkpoint."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..modelfiles import LEGACY_FILE, read_model_file, write_model_file
from . import distributed as D
from .trainer import load_checkpoint


class SavedModel:
    """What the fitted-model classes of both directions share: the common part of their saved
    state (they are dataclasses with ``name``, ``model``, ``hparams``, ``data_spec``, ``window``,
    ``provenance`` and ``history``) and its atomic writer, which saves what the class's
    ``state()`` returns: ``_state`` plus that class's own parts."""

    def _state(self, fmt: Any, **parts: Any) -> dict[str, Any]:
        return {"format": fmt, "name": self.name, "hparams": self.hparams,
                "shape": self.model.shape.to_dict(), "data_spec": self.data_spec.to_dict(),
                "window": asdict(self.window), **parts, "provenance": self.provenance,
                "history": self.history,
                "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model atomically (``model.safetensors``); returns the path."""
        if D.is_main_process():
            write_model_file(path, self.state())
        return Path(path)


def load_fitted_model(path: str | os.PathLike, fmt: Any, what: str,
                      direction: str = "eeg2fmri") -> tuple[dict[str, Any], torch.nn.Module]:
    """The saved state of a fitted model and its network rebuilt with the saved weights (eval
    mode), from a ``model.safetensors`` or a training checkpoint (see :func:`load_fitted_state`)."""
    from ..models import registry
    from ..models.base import ModelShape

    state = load_fitted_state(path, fmt, what)
    net = registry.build(state["name"], ModelShape.from_dict(state["shape"]), state["hparams"],
                         direction=direction)
    net.load_state_dict(state["model_state"])
    net.eval()
    return state, net


def read_saved_state(path: str | os.PathLike) -> dict[str, Any]:
    """The raw saved state of a fitted model (``model.safetensors``) or a training checkpoint.

    Training checkpoints (``*.pt``) load weights-only; a fitted model must be safetensors (an old
    ``model.pt`` is refused in one line by :func:`~bids_eeg2fmri.modelfiles.read_model_file`).
    """
    if Path(path).suffix == ".pt" and Path(path).name != LEGACY_FILE:
        return load_checkpoint(path)
    return read_model_file(path)


def load_fitted_state(path: str | os.PathLike, fmt: str, what: str) -> dict[str, Any]:
    """The saved state of a fitted model, from a ``model.safetensors`` or a training checkpoint.

    A training checkpoint carries the fitted model's metadata under ``fitted`` and its weights as
    the best (else last) epoch's state; both file kinds come back in the ``model.safetensors`` layout.

    Parameters
    ----------
    path
        The file.
    fmt
        The ``format`` tag the caller's model class writes.
    what
        Words for the error message, e.g. ``"bids_eeg2fmri model file"``.

    Raises
    ------
    DataError
        When the file is unreadable or of another format.
    """
    state = read_saved_state(path)
    if "fitted" in state:
        state = {**state["fitted"], "model_state": state["best_state"] or state["model"]}
    if state.get("format") != fmt:
        raise DataError(f"not a {what}", path=path)
    return state
