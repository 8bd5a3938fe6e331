"""``transformer-cnn`` after Bruno et al. 2025: a transformer predicting the latents of a pretrained
3-D convolutional BOLD autoencoder.

Phase 1 (``pretrain_epochs``): the autoencoder (3-D convolutions on voxel grids, dense on regions)
learns to reconstruct BOLD volumes (MSE).

Phase 2: the autoencoder is frozen. A transformer encoder embeds one token per TR of the EEG window
(that TR's ``channels × frequencies × frames`` spectrogram, sinusoidal time positions). The
transformer decoder generates the latents of the last ``history + 1`` volumes in order — volumes
``t − history … t`` — each from the previous volumes' latents (causal self-attention, a learned start
token first) and cross-attention to the EEG tokens. Training feeds the autoencoder latents of the
true previous volumes (teacher forcing); inference feeds back its own predicted latents
(autoregressive), since at test time only EEG exists. The frozen decoder turns the latent of volume
``t`` into the prediction; the loss is the MSE of the decoded volumes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape
from ..layers import VolumeAutoencoder, causal_mask, sinusoidal_positions
from ..registry import register


@register("transformer-cnn", defaults={"latent": 32, "filters": 8, "d_model": 64, "heads": 4,
                                       "encoder_layers": 2, "decoder_layers": 2, "ff": 128,
                                       "dropout": 0.1, "pretrain_epochs": 6},
          lr=1e-3, history=3,
          paper="Bruno et al. 2025 (3-D CNN autoencoder + transformer over previous volumes)")
class TransformerCNN(EEG2fMRIModel):
    """Pretrained BOLD autoencoder, EEG-token encoder, autoregressive latent decoder."""

    def __init__(self, shape: ModelShape, latent: int = 32, filters: int = 8, d_model: int = 64,
                 heads: int = 4, encoder_layers: int = 2, decoder_layers: int = 2, ff: int = 128,
                 dropout: float = 0.1, pretrain_epochs: int = 6) -> None:
        super().__init__(shape)
        self.warmup_epochs = int(pretrain_epochs)
        self.autoencoder = VolumeAutoencoder(shape, latent=latent, channels=filters)
        self.embed = nn.Linear(shape.n_channels * shape.n_freqs * shape.n_frames, d_model)
        self.register_buffer("time_pos", sinusoidal_positions(shape.window, d_model),
                             persistent=False)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True,
                                       norm_first=True), encoder_layers, enable_nested_tensor=False)
        self.latent_in = nn.Linear(latent, d_model)
        self.start = nn.Parameter(torch.zeros(1, 1, d_model))
        self.step_pos = nn.Parameter(torch.randn(shape.history + 1, d_model) * 0.02)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d_model, heads, ff, dropout, batch_first=True,
                                       norm_first=True), decoder_layers)
        self.latent_out = nn.Linear(d_model, latent)
        self._phase = "transformer"

    def set_epoch(self, epoch: int) -> None:
        """Pretrain the autoencoder first, then freeze it and train the transformer."""
        pretraining = epoch < self.warmup_epochs
        self._phase = "autoencoder" if pretraining else "transformer"
        self.autoencoder.requires_grad_(pretraining)
        for name, p in self.named_parameters():
            if not name.startswith("autoencoder."):
                p.requires_grad_(not pretraining)

    def encode_eeg(self, x: torch.Tensor) -> torch.Tensor:
        b, w, c, f, k = x.shape
        return self.encoder(self.embed(x.reshape(b, w, c * f * k)) + self.time_pos)

    def _decode(self, prev: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Latent predictions for steps ``0 … n−1`` from previous latents ``(B, n−1, latent)``."""
        b = memory.shape[0]
        seq = torch.cat([self.start.expand(b, 1, -1), self.latent_in(prev)], dim=1)
        n = seq.shape[1]
        h = self.decoder(seq + self.step_pos[:n], memory, tgt_mask=causal_mask(n, seq.device),
                         tgt_is_causal=True)
        return self.latent_out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Autoregressive: latents of volumes t−history … t from the model's own outputs."""
        memory = self.encode_eeg(x)
        latents = memory.new_zeros(x.shape[0], 0, self.autoencoder.to_latent.out_features)
        for _ in range(self.shape.history + 1):
            latents = torch.cat([latents, self._decode(latents, memory)[:, -1:]], dim=1)
        return self.autoencoder.decode(latents[:, -1])

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        if self._phase == "autoencoder":
            volumes = torch.cat([batch["y_hist"].reshape(-1, y.shape[1]), y])
            return nn.functional.mse_loss(self.autoencoder(volumes), volumes)
        seq = torch.cat([batch["y_hist"], y[:, None]], dim=1)              # (B, H+1, targets)
        b, n, t = seq.shape
        with torch.no_grad():
            true_lat = self.autoencoder.encode(seq.reshape(b * n, t)).reshape(b, n, -1)
        pred_lat = self._decode(true_lat[:, :-1], self.encode_eeg(batch["x"]))
        decoded = self.autoencoder.decode(pred_lat.reshape(b * n, -1)).reshape(b, n, t)
        return nn.functional.mse_loss(decoded, seq)
