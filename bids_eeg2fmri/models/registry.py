"""Model registry: name → class, default hyper-parameters, learning rate and source paper.

Both directions share it: EEG→fMRI models register with ``direction="eeg2fmri"``; fMRI→EEG models
(issue 7) register with ``direction="fmri2eeg"``. A model registers itself where it is defined::

    @register("mlp", defaults={"hidden": 256}, lr=1e-3, paper="Bricman & Borst 2021")
    class MLP(EEG2fMRIModel): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .base import ModelShape

# Modules whose import registers their models; loaded on first use of the registry.
_MODEL_PACKAGES = ("bids_eeg2fmri.models.eeg2fmri",)


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


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, defaults: dict[str, Any] | None = None, lr: float = 1e-3,
             paper: str = "", direction: str = "eeg2fmri", history: int = 0,
             closed_form: bool = False) -> Callable[[type], type]:
    """Class decorator adding a model to the registry under ``name``."""
    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, cls, dict(defaults or {}), lr, paper, direction,
                                     history, closed_form)
        return cls
    return deco


def _load() -> None:
    for pkg in _MODEL_PACKAGES:
        importlib.import_module(pkg)


def available(direction: str | None = "eeg2fmri") -> list[str]:
    """Registered model names (of one direction, or all with ``None``), in registration order."""
    _load()
    return [n for n, e in _REGISTRY.items() if direction is None or e.direction == direction]


def entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; :class:`UsageError` listing the choices when unknown."""
    _load()
    if name not in _REGISTRY:
        raise UsageError(f"unknown model {name!r}; available: {', '.join(available(None))}")
    return _REGISTRY[name]


def resolve_hparams(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults of ``name`` updated by ``overrides``; unknown keys are a :class:`UsageError`."""
    e = entry(name)
    unknown = sorted(set(overrides or {}) - set(e.defaults))
    if unknown:
        raise UsageError(f"model {name} has no setting {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(e.defaults)) or 'none'}")
    return {**e.defaults, **(overrides or {})}


def build(name: str, shape: ModelShape, hparams: dict[str, Any] | None = None):
    """Instantiate model ``name`` for ``shape`` with its defaults updated by ``hparams``."""
    return entry(name).cls(shape, **resolve_hparams(name, hparams))
