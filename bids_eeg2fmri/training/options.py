"""The optimisation settings of training, built from the group options in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import VALIDATION_REGIMES, Config, GroupConfig
from ..errors import UsageError


@dataclass
class TrainConfig:
    """Optimisation settings (the CLI's ``--epochs``, ``--batch-size``, ``--lr``, ...).

    Attributes
    ----------
    epochs
        Maximum number of epochs.
    batch_size
        Samples per optimisation step and process: under torchrun with ``N`` processes a step
        averages the gradients of ``N × batch_size`` samples (the learning rate is not rescaled).
    lr
        AdamW learning rate; None takes the model's registered default (the paper's).
    weight_decay
        AdamW decoupled weight decay.
    patience
        Epochs without validation improvement before stopping; 0 disables early stopping.
    grad_clip
        Maximum gradient L2 norm; 0 disables clipping.
    device
        ``auto``, ``cpu`` or ``cuda``.
    amp
        Autocast on CUDA (bf16 when supported, else fp16); ignored on CPU.
    seed
        Seeds weights, dropout and batch order.
    num_workers
        DataLoader worker processes (0 reads in the main process).
    progress
        Show a progress bar; None shows it only on a terminal.
    shrink
        After early stopping, shrink the predictions towards the training mean by the scale that
        is best on the validation samples (:mod:`.shrinkage`; models that set ``shrinkable``).
    validation
        What the deep models' validation samples are when the caller gives none: ``time`` (the
        buffered last 20 % of every training run) or ``participant`` (inner
        leave-one-participant-out over the training participants, :mod:`.inner`).
    """

    # The group options' defaults are the only defaults: the API trains as the CLI does.
    epochs: int = GroupConfig.epochs
    batch_size: int = GroupConfig.batch_size
    lr: float | None = None
    weight_decay: float = GroupConfig.weight_decay
    patience: int = GroupConfig.patience
    grad_clip: float = 1.0
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    num_workers: int = 0
    progress: bool | None = None
    shrink: bool = True
    validation: str = GroupConfig.validation

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> "TrainConfig":
        """The training options of ``config`` (``[group]`` and the device and seed of
        ``[execution]``): the one place they are built; ``overrides`` replace single fields."""
        gr, ex = config.group, config.execution
        return cls(**{"epochs": gr.epochs, "batch_size": gr.batch_size,
                      "weight_decay": gr.weight_decay, "device": ex.device,
                      "lr": gr.lr or None, "patience": gr.patience, "validation": gr.validation,
                      "seed": ex.random_seed, "progress": False, **overrides})

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError(f"epochs and batch size must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.validation not in VALIDATION_REGIMES:
            raise UsageError(f"validation must be one of {', '.join(VALIDATION_REGIMES)}, got "
                             f"{self.validation!r}")
