"""``cnn`` after Bricman & Borst 2021: a Siamese convolutional encoder shared by all channels.

Each channel's window goes through the same convolutional encoder (weights shared across channels,
hence "Siamese"); the per-channel embeddings are concatenated in channel order and a dense head
maps them to the targets. Sharing the encoder keeps the parameter count independent of the montage
and lets every channel teach it. The encoder convolves the channel's ``frequency × time``
spectrogram in 2-D, or — the paper's own input, ``--eeg-features raw`` — its raw samples in 1-D
(``conv="1d"``, the default for raw input): strided 1-D convolutions over the window's samples,
then average pooling over time, so an embedding summarises the channel's rhythms over the window.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape, raw_input
from ..registry import register

CONVS = ("auto", "1d", "2d")


def conv1d_encoder(filters: int, out: int, kernel: int = 7) -> nn.Sequential:
    """``(N, 1, samples)`` → ``(N, out)``: three strided 1-D convolutions, average pooling over
    time into 4 bins, a dense layer (the raw-EEG channel encoder of ``cnn`` and ``transformer``)."""
    f, pad = filters, kernel // 2
    return nn.Sequential(
        nn.Conv1d(1, f, kernel, stride=2, padding=pad), nn.GELU(),
        nn.Conv1d(f, 2 * f, kernel, stride=2, padding=pad), nn.GELU(),
        nn.Conv1d(2 * f, 2 * f, kernel, stride=2, padding=pad), nn.GELU(),
        nn.AdaptiveAvgPool1d(4), nn.Flatten(), nn.Linear(8 * f, out), nn.GELU())


@register("cnn", defaults={"filters": 8, "embedding": 16, "hidden": 128, "dropout": 0.3,
                           "conv": "auto", "kernel": 7},
          lr=1e-3, paper="Bricman & Borst 2021 (Siamese per-channel CNN)")
class SiameseCNN(EEG2fMRIModel):
    """Shared per-channel encoder (Conv2d over frequency × time, or Conv1d over raw samples) →
    concat → dense head. ``conv="auto"`` picks 1-D for raw EEG input; ``kernel`` is the 1-D
    kernel length in samples."""

    def __init__(self, shape: ModelShape, filters: int = 8, embedding: int = 16, hidden: int = 128,
                 dropout: float = 0.3, conv: str = "auto", kernel: int = 7) -> None:
        super().__init__(shape)
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        self.one_d = conv == "1d" or (conv == "auto" and raw_input(shape))
        f = filters
        if self.one_d:
            self.encoder = conv1d_encoder(f, embedding, kernel)
        else:
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
        if self.one_d:
            # (B, W, C, F, K) → one series per channel: the window's samples in time order.
            series = x.permute(0, 2, 1, 3, 4).reshape(b * c, 1, w * f * k)
            return self.head(self.encoder(series).reshape(b, -1))
        # (B, W, C, F, K) → one image per channel: frequency rows × (window·frames) time columns.
        img = x.permute(0, 2, 3, 1, 4).reshape(b * c, 1, f, w * k)
        return self.head(self.encoder(img).reshape(b, -1))
