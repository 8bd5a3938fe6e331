"""``mlp`` after Bricman & Borst 2021: a dense network on the EEG window.

Two variants, as in the paper: the flattened window through dense layers, or (``siamese``) one
dense embedding shared by every channel — each channel's whole window (its raw samples, or its
spectrogram) through the same layers — with the channel embeddings concatenated before a dense
head. Sharing keeps the parameter count independent of the montage and of the window's length in
samples, which is what makes raw 30 s inputs (``--eeg-features raw``) trainable; by default the
Siamese variant is used for raw input and the flat one otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape, raw_input
from ..registry import register


@register("mlp", defaults={"hidden": 1024, "layers": 2, "dropout": 0.3, "siamese": None,
                           "embedding": 16, "rank": None},
          lr=1e-3, paper="Bricman & Borst 2021 (dense network; Siamese per-channel variant)")
class MLP(EEG2fMRIModel):
    """Flat: ``window × channels × freqs × frames`` → ``layers`` GELU layers → targets.
    Siamese: per channel ``window × freqs × frames`` → shared ``layers`` → ``embedding`` →
    concatenated → dense head. ``siamese=None`` picks Siamese for raw EEG input."""

    def __init__(self, shape: ModelShape, hidden: int = 1024, layers: int = 2,
                 dropout: float = 0.3, siamese: bool | None = None, embedding: int = 16,
                 rank: int | None = None) -> None:
        super().__init__(shape)
        self.siamese = raw_input(shape) if siamese is None else bool(siamese)
        width = shape.n_inputs // shape.n_channels if self.siamese else shape.n_inputs
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Dropout(dropout), nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        # rank: a linear bottleneck before the targets (reduced-rank output): the targets are
        # combinations of `rank` learned patterns, so fitting one target's noise costs the others.
        last = hidden if self.siamese else width
        out = ([nn.Linear(last, rank), nn.Linear(rank, shape.n_targets)] if rank
               else [nn.Linear(last, shape.n_targets)])
        if self.siamese:
            self.embed = nn.Sequential(*blocks, nn.Linear(width, embedding), nn.GELU())
            self.net = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                     nn.Linear(shape.n_channels * embedding, hidden), nn.GELU(),
                                     *out)
        else:
            self.net = nn.Sequential(nn.Flatten(), *blocks, *out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.siamese:
            b, w, c, f, k = x.shape
            x = self.embed(x.permute(0, 2, 1, 3, 4).reshape(b, c, w * f * k))
        return self.net(x)

    shrinkable = True

    def shrink_output(self, scale: torch.Tensor) -> None:
        # The output layer is affine, so scaling a target's row of weights and its bias scales
        # that target's predictions.
        last = self.net[-1]
        with torch.no_grad():
            last.weight.mul_(scale.to(last.weight)[:, None])
            last.bias.mul_(scale.to(last.bias))
