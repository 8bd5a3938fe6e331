"""``topo-attention`` after Calhas & Henriques (EEG-to-fMRI synthesis with attentional graphs of
electrode relationships; seed code "EEG to fMRI synthesis in Python").

1. **Topographical attention**: every channel's spectrogram is embedded; query·key scores between
   channels go through **sparsemax**, giving a sparse ``channels × channels`` graph ``A`` (each row
   sums to 1, most entries exactly 0). The EEG is re-expressed as ``A @ channels`` — each channel
   becomes a mixture of the few electrodes it attends to. ``attention_map(x)`` returns ``A``.
2. **3-D residual convolutional EEG encoder**: the attended ``channel × frequency × time`` block as a
   one-channel 3-D image through ResNet-style 3-D blocks to a latent ``z_eeg``.
3. **Random-Fourier-feature decoder**: ``z`` → fixed random Fourier features ``cos(zΩ + b)`` → linear
   map to the volume.
4. **fMRI autoencoder**: a (3-D convolutional, on voxel grids) encoder maps the measured volume to
   ``z_fmri``; the shared decoder must reconstruct the volume from it, and the EEG latent is pulled
   towards it: loss = MAE(decode(z_eeg), y) + MAE(decode(z_fmri), y) + cosine distance(z_eeg, z_fmri).

Inference uses only the EEG path.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape
from ..layers import RandomFourierFeatures, ResBlock3d, VolumeAutoencoder, sparsemax
from ..registry import register


@register("topo-attention", defaults={"latent": 32, "attention_dim": 16, "filters": 8,
                                      "fourier_features": 256, "fourier_scale": 3.0,
                                      "dropout": 0.2},
          lr=3e-3, paper="Calhas & Henriques 2022, EEG to fMRI synthesis benefits from attentional "
          "graphs of electrode relationships")
class TopoAttention(EEG2fMRIModel):
    """Sparsemax channel attention → 3-D residual CNN → RFF decoder, aligned with an fMRI autoencoder."""

    def __init__(self, shape: ModelShape, latent: int = 32, attention_dim: int = 16, filters: int = 8,
                 fourier_features: int = 256, fourier_scale: float = 3.0,
                 dropout: float = 0.2) -> None:
        super().__init__(shape)
        token_in = shape.window * shape.n_freqs * shape.n_frames
        self.query = nn.Linear(token_in, attention_dim)
        self.key = nn.Linear(token_in, attention_dim)
        self.scale = 1.0 / math.sqrt(attention_dim)
        f = filters
        self.eeg_encoder = nn.Sequential(
            ResBlock3d(1, f), ResBlock3d(f, 2 * f, stride=2), ResBlock3d(2 * f, 2 * f, stride=2),
            nn.AdaptiveAvgPool3d((2, 2, 2)), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(16 * f, latent))
        # Unit-variance latents keep the Fourier features' bandwidth what ``fourier_scale`` says;
        # unnormalised latents drift in scale and the cosines turn into high-frequency noise.
        self.latent_norm = nn.LayerNorm(latent, elementwise_affine=False)
        self.rff = RandomFourierFeatures(latent, fourier_features, fourier_scale / math.sqrt(latent))
        self.readout = nn.Linear(fourier_features, shape.n_targets)
        # The fMRI side: its encoder defines the shared latent space the EEG latent is aligned to.
        self.fmri = VolumeAutoencoder(shape, latent=latent, channels=f, with_decoder=False)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse channel-to-channel attention ``(B, channels, channels)``; rows sum to 1."""
        tokens = self._tokens(x)
        scores = self.query(tokens) @ self.key(tokens).transpose(1, 2) * self.scale
        return sparsemax(scores, dim=-1)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        b, w, c, f, k = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b, c, w * f * k)

    def encode_eeg(self, x: torch.Tensor) -> torch.Tensor:
        b, w, c, f, k = x.shape
        attended = self.attention_map(x) @ self._tokens(x)            # (B, C, W·F·K)
        # (channel, frequency, time) volume: time is window × frames in order.
        vol = attended.reshape(b, c, w, f, k).permute(0, 1, 3, 2, 4).reshape(b, 1, c, f, w * k)
        return self.eeg_encoder(vol)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rff(self.latent_norm(z)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode_eeg(x))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        z_eeg = self.encode_eeg(batch["x"])
        z_fmri = self.fmri.encode(y)
        mae = (nn.functional.l1_loss(self.decode(z_eeg), y)
               + nn.functional.l1_loss(self.decode(z_fmri), y))
        cosine = 1.0 - nn.functional.cosine_similarity(z_eeg, z_fmri, dim=1).mean()
        return mae + cosine
