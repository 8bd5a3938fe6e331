"""Model registry: name → class, default hyper-parameters, learning rate and source paper.

Both directions share it: EEG→fMRI models register with ``direction="eeg2fmri"``; fMRI→EEG models
(issue 7) register with ``direction="fmri2eeg"``. A model registers itself where it is defined::

    @register("mlp", defaults={"hidden": 256}, lr=1e-3, paper="Bricman & Borst 2021")
    class MLP(EEG2fMRIModel): ...

A name is unique within a direction, so both directions can offer a ``ridge`` baseline; lookups
take the direction (default ``eeg2fmri``, the older API).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .base import ModelShape

# Modules whose import registers their models; loaded on first use of the registry.
_MODEL_PACKAGES = ("bids_eeg2fmri.models.eeg2fmri", "bids_eeg2fmri.models.fmri2eeg")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str
    cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    paper: str = ""
    direction: str = "eeg2fmri"
    #: Previous BOLD volumes the model reads (``y_hist``); sets ``WindowSpec.history``.
    history: int = 0
    #: True for models fitted in closed form (no gradient training).
    closed_form: bool = False


DIRECTIONS = ("eeg2fmri", "fmri2eeg")

_REGISTRY: dict[tuple[str, str], ModelEntry] = {}


def register(name: str, *, defaults: dict[str, Any] | None = None, lr: float = 1e-3,
             paper: str = "", direction: str = "eeg2fmri", history: int = 0,
             closed_form: bool = False) -> Callable[[type], type]:
    """Class decorator adding a model to the registry under ``name``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")

    def deco(cls: type) -> type:
        key = (name, direction)
        if key in _REGISTRY and _REGISTRY[key].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered for {direction}")
        _REGISTRY[key] = ModelEntry(name, cls, dict(defaults or {}), lr, paper, direction,
                                     history, closed_form)
        return cls
    return deco


def _load() -> None:
    for pkg in _MODEL_PACKAGES:
        importlib.import_module(pkg)


def available(direction: str | None = "eeg2fmri") -> list[str]:
    """Registered model names (of one direction, or all with ``None``), in registration order."""
    _load()
    names = [n for (n, d) in _REGISTRY if direction is None or d == direction]
    return list(dict.fromkeys(names))


def entry(name: str, direction: str = "eeg2fmri") -> ModelEntry:
    """The registry entry of ``name`` for ``direction``; :class:`UsageError` listing the choices."""
    _load()
    if (name, direction) not in _REGISTRY:
        raise UsageError(f"unknown model {name!r} for {direction}; available: "
                         f"{', '.join(available(direction))}")
    return _REGISTRY[(name, direction)]


def resolve_hparams(name: str, overrides: dict[str, Any] | None = None,
                    direction: str = "eeg2fmri") -> dict[str, Any]:
    """Defaults of ``name`` updated by ``overrides``; unknown keys are a :class:`UsageError`."""
    e = entry(name, direction)
    unknown = sorted(set(overrides or {}) - set(e.defaults))
    if unknown:
        raise UsageError(f"model {name} has no setting {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(e.defaults)) or 'none'}")
    return {**e.defaults, **(overrides or {})}


def build(name: str, shape: ModelShape, hparams: dict[str, Any] | None = None,
          direction: str = "eeg2fmri"):
    """Instantiate model ``name`` of ``direction`` for ``shape`` with defaults updated by ``hparams``."""
    return entry(name, direction).cls(shape, **resolve_hparams(name, hparams, direction))
