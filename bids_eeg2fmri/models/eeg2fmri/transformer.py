"""``transformer`` after Bricman & Borst 2021: channel tokens in, the volume out slice by slice.

Encoder: every EEG channel is one token — its whole ``window × frequency × frame`` spectrogram
through a linear embedding (raw samples, ``--eeg-features raw``: through ``cnn``'s 1-D
convolutional encoder) shared by all channels, plus a
per-channel position (the electrode's identity) — followed by self-attention across channels.
Positions of channels and of output slices are learned (default) or the fixed sinusoidal table of
Vaswani et al. 2017 (``positions="sinusoidal"``); the paper uses both.

Decoder: the target volume is a sequence of axial slices (``z`` planes of the grid, each ``X·Y``
values; region targets are cut into equal chunks). Slice ``s`` is produced from the embeddings of
slices ``0 … s−1`` (causal self-attention, a learned start token first) with cross-attention to the
channel tokens. Training feeds the true previous slices (teacher forcing, plus a second pass fed
with its own first-pass outputs against exposure bias); inference feeds back its own predictions
(autoregressive), which is all the model has when only EEG is given.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..base import EEG2fMRIModel, GridCodec, ModelShape, raw_input
from ..layers import causal_mask, sinusoidal_positions
from ..registry import register
from .cnn import conv1d_encoder

POSITIONS = ("learned", "sinusoidal")


@register("transformer", defaults={"d_model": 64, "heads": 4, "encoder_layers": 2,
                                   "decoder_layers": 2, "ff": 128, "dropout": 0.1,
                                   "region_chunks": 8, "positions": "learned"},
          lr=1e-3, paper="Bricman & Borst 2021 (transformer with slice-wise decoder)")
class SliceTransformer(EEG2fMRIModel):
    """Channel-token encoder, causal slice decoder."""

    def __init__(self, shape: ModelShape, d_model: int = 64, heads: int = 4, encoder_layers: int = 2,
                 decoder_layers: int = 2, ff: int = 128, dropout: float = 0.1,
                 region_chunks: int = 8, positions: str = "learned") -> None:
        super().__init__(shape)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.codec = GridCodec(shape)
        if shape.grid is not None:
            gx, gy, gz = self.codec.grid_shape
            self.n_slices, self.slice_len = gz, gx * gy
        else:
            self.n_slices = max(1, min(region_chunks, shape.n_targets))
            self.slice_len = math.ceil(shape.n_targets / self.n_slices)
        token_in = shape.window * shape.n_freqs * shape.n_frames
        # Raw samples: a linear map of phase-random oscillations averages their power away, so
        # each channel's series is embedded by the 1-D convolutional encoder of ``cnn`` instead.
        self.raw = raw_input(shape)
        self.embed = conv1d_encoder(8, d_model) if self.raw else nn.Linear(token_in, d_model)
        self._position("channel_pos", shape.n_channels, d_model, positions)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True,
                                       norm_first=True), encoder_layers, enable_nested_tensor=False)
        self.slice_embed = nn.Linear(self.slice_len, d_model)
        self.start = nn.Parameter(torch.zeros(1, 1, d_model))
        self._position("slice_pos", self.n_slices, d_model, positions)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d_model, heads, ff, dropout, batch_first=True,
                                       norm_first=True), decoder_layers)
        self.out = nn.Linear(d_model, self.slice_len)

    def _position(self, name: str, n: int, d: int, kind: str) -> None:
        if kind == "learned":
            setattr(self, name, nn.Parameter(torch.randn(n, d) * 0.02))
        else:  # fixed: recomputed from the sizes, so not saved with the weights
            self.register_buffer(name, sinusoidal_positions(n, d), persistent=False)

    # ------------------------------------------------------------------ layout
    def to_slices(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, n_targets)`` → ``(B, n_slices, slice_len)``."""
        if self.shape.grid is not None:
            v = self.codec.to_grid(y)                       # (B, X, Y, Z)
            return v.permute(0, 3, 1, 2).reshape(y.shape[0], self.n_slices, self.slice_len)
        pad = self.n_slices * self.slice_len - y.shape[1]
        return nn.functional.pad(y, (0, pad)).reshape(y.shape[0], self.n_slices, self.slice_len)

    def from_slices(self, s: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_slices`."""
        b = s.shape[0]
        if self.shape.grid is not None:
            gx, gy, gz = self.codec.grid_shape
            return self.codec.from_grid(s.reshape(b, gz, gx, gy).permute(0, 2, 3, 1))
        return s.reshape(b, -1)[:, : self.shape.n_targets]

    # ------------------------------------------------------------------ passes
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b, w, c, f, k = x.shape
        tokens = x.permute(0, 2, 1, 3, 4).reshape(b, c, w * f * k)
        if self.raw:
            tokens = self.embed(tokens.reshape(b * c, 1, -1)).reshape(b, c, -1)
        else:
            tokens = self.embed(tokens)
        return self.encoder(tokens + self.channel_pos)

    def _decode(self, prev: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Outputs for positions ``0 … n−1`` given previous slices ``(B, n−1, slice_len)``."""
        b = memory.shape[0]
        seq = torch.cat([self.start.expand(b, 1, -1), self.slice_embed(prev)], dim=1)
        n = seq.shape[1]
        h = self.decoder(seq + self.slice_pos[:n], memory,
                         tgt_mask=causal_mask(n, seq.device), tgt_is_causal=True)
        return self.out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Autoregressive decoding: each slice from the model's own previous slices."""
        memory = self.encode(x)
        slices = x.new_zeros(x.shape[0], 0, self.slice_len)
        for _ in range(self.n_slices):
            nxt = self._decode(slices, memory)[:, -1:]
            slices = torch.cat([slices, nxt], dim=1)
        return self.from_slices(slices)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher forcing plus one parallel scheduled-sampling pass; MSE on the targets.

        Pass 1 decodes every slice from the true previous slices in one shot (teacher forcing).
        Pass 2 decodes again from pass 1's own (detached) outputs, the kind of input inference
        feeds back, which counters exposure bias (Duckworth et al. 2019) at the cost of one more
        decoder pass rather than a sequential loop.
        """
        memory = self.encode(batch["x"])
        true = self.to_slices(batch["y"])
        forced = self._decode(true[:, :-1], memory)
        sampled = self._decode(forced[:, :-1].detach(), memory)
        loss = 0.0
        for out in (forced, sampled):
            loss = loss + nn.functional.mse_loss(self.from_slices(out), batch["y"])
        return loss / 2
