"""``mlp`` after Bricman & Borst 2021: a dense network on the flattened EEG window."""

from __future__ import annotations

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape
from ..registry import register


@register("mlp", defaults={"hidden": 256, "layers": 2, "dropout": 0.3}, lr=1e-3,
          paper="Bricman & Borst 2021 (dense baseline network)")
class MLP(EEG2fMRIModel):
    """Flattened ``window × channels × freqs × frames`` → ``layers`` GELU layers → targets."""

    def __init__(self, shape: ModelShape, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.3) -> None:
        super().__init__(shape)
        blocks: list[nn.Module] = [nn.Flatten()]
        width = shape.n_inputs
        for _ in range(layers):
            blocks += [nn.Dropout(dropout), nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        blocks.append(nn.Linear(width, shape.n_targets))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
