"""``cnn`` after Bricman & Borst 2021: a Siamese convolutional encoder shared by all channels.

Each channel's ``frequency × time`` spectrogram of the window goes through the same 2-D
convolutional encoder (weights shared across channels, hence "Siamese"); the per-channel embeddings
are concatenated in channel order and a dense head maps them to the targets. Sharing the encoder
keeps the parameter count independent of the montage and lets every channel teach it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape
from ..registry import register


@register("cnn", defaults={"filters": 8, "embedding": 16, "hidden": 128, "dropout": 0.3},
          lr=1e-3, paper="Bricman & Borst 2021 (Siamese per-channel CNN)")
class SiameseCNN(EEG2fMRIModel):
    """Shared per-channel Conv2d encoder over (frequency, time) → concat → dense head."""

    def __init__(self, shape: ModelShape, filters: int = 8, embedding: int = 16, hidden: int = 128,
                 dropout: float = 0.3) -> None:
        super().__init__(shape)
        f = filters
        self.encoder = nn.Sequential(
            nn.Conv2d(1, f, 3, padding=1), nn.GELU(),
            nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(),
            nn.Linear(8 * f, embedding), nn.GELU())
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(shape.n_channels * embedding, hidden), nn.GELU(),
            nn.Linear(hidden, shape.n_targets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, w, c, f, k = x.shape
        # (B, W, C, F, K) → one image per channel: frequency rows × (window·frames) time columns.
        img = x.permute(0, 2, 3, 1, 4).reshape(b * c, 1, f, w * k)
        emb = self.encoder(img).reshape(b, -1)
        return self.head(emb)
