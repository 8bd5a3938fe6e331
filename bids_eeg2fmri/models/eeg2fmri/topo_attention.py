"""``topo-attention`` after Calhas & Henriques (EEG-to-fMRI synthesis with attentional graphs of
electrode relationships; seed code "EEG to fMRI synthesis in Python").

1. **Topographical attention**: every channel's spectrogram is embedded; query·key scores between
   channels go through **sparsemax**, giving a sparse ``channels × channels`` graph ``A`` (each row
   sums to 1, most entries exactly 0). The EEG is re-expressed as ``A @ channels`` — each channel
   becomes a mixture of the few electrodes it attends to. ``attention_map(x)`` returns ``A``.
2. **3-D residual convolutional EEG encoder**: the attended ``channel × frequency × time`` block as a
   one-channel 3-D image through ResNet-style 3-D blocks to a latent ``z_eeg``.
3. **Decoder**: ``z`` → fixed random Fourier features ``cos(zΩ + b)`` → a linear map to the volume
   (``decoder="rff"``), or to the lowest 3-D DCT coefficients of the volume followed by the inverse
   DCT (``decoder="dct"``, Calhas' ``padded_iDCT3D``: a spatially smooth volume by construction).
   With ``variational=True`` the last dense map is Calhas' variational layer
   (:class:`~..layers.VariationalDense`: Gaussian weight posterior, per-target Laplace scale).
4. **fMRI encoder**: a (3-D convolutional, on voxel grids) encoder maps the measured volume to
   ``z_fmri``; the EEG latent is pulled towards it. The paper's loss (the default)::

       MAE(decode(z_eeg), y) + cosine distance(z_eeg, z_fmri)

   ``variational=True`` replaces the MAE by the Laplace negative log-likelihood and adds the
   weights' KL divergence (× ``kl_weight``, per weight); ``organize > 0`` adds the OrganizeChannels
   regulariser on the attention map (× ``organize``); ``fmri_reconstruction=True`` adds our
   earlier extra term ``MAE(decode(z_fmri), y)`` (the shared decoder also reconstructing the
   volume from the fMRI latent), which the paper does not have.

Inference uses only the EEG path (the posterior-mean weights when variational).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape
from ..layers import (DCTDecoder, RandomFourierFeatures, ResBlock3d, VariationalDense,
                      VolumeAutoencoder, laplace_nll, organize_channels, sparsemax)
from ..registry import register


DEFAULTS = {"latent": 32, "attention_dim": 16, "filters": 8, "fourier_features": 256,
            "fourier_scale": 3.0, "dropout": 0.2, "decoder": "rff", "dct_fraction": 0.5,
            "variational": False, "kl_weight": 1e-3, "organize": 0.0, "fmri_reconstruction": False}
PAPER = ("Calhas & Henriques 2022, EEG to fMRI synthesis benefits from attentional graphs of "
         "electrode relationships")


@register("topo-attention", defaults=DEFAULTS, lr=3e-3, paper=PAPER)
class TopoAttention(EEG2fMRIModel):
    """Sparsemax channel attention → 3-D residual CNN → RFF decoder, aligned with an fMRI autoencoder."""

    def __init__(self, shape: ModelShape, latent: int = 32, attention_dim: int = 16, filters: int = 8,
                 fourier_features: int = 256, fourier_scale: float = 3.0,
                 dropout: float = 0.2, decoder: str = "rff", dct_fraction: float = 0.5,
                 variational: bool = False, kl_weight: float = 1e-3, organize: float = 0.0,
                 fmri_reconstruction: bool = False) -> None:
        super().__init__(shape)
        if decoder not in ("rff", "dct"):
            raise ValueError(f"decoder must be 'rff' or 'dct', got {decoder!r}")
        self.variational, self.kl_weight = bool(variational), float(kl_weight)
        self.organize, self.fmri_reconstruction = float(organize), bool(fmri_reconstruction)
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
        if decoder == "dct":
            # The DCT decoder maps the features to coefficients, then inverse-transforms them.
            self.dct: DCTDecoder | None = DCTDecoder(shape, dct_fraction)
            n_out = int(np.prod(self.dct.n_coef))
        else:
            self.dct, n_out = None, shape.n_targets
        self.readout = (VariationalDense(fourier_features, n_out) if self.variational
                        else nn.Linear(fourier_features, n_out))
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

    def encode_eeg(self, x: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        b, w, c, f, k = x.shape
        attention = self.attention_map(x) if attention is None else attention
        attended = attention @ self._tokens(x)                        # (B, C, W·F·K)
        # (channel, frequency, time) volume: time is window × frames in order.
        vol = attended.reshape(b, c, w, f, k).permute(0, 1, 3, 2, 4).reshape(b, 1, c, f, w * k)
        return self.eeg_encoder(vol)

    def _decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Volume and (variational) per-target log-scale."""
        h = self.rff(self.latent_norm(z))
        out = self.readout(h)
        mean, log_scale = out if self.variational else (out, None)
        if self.dct is not None:
            mean = self.dct.from_coefficients(mean)
            if log_scale is not None:  # one scale per coefficient → one shared per target
                log_scale = log_scale.mean(dim=1, keepdim=True).expand_as(mean)
        return mean, log_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._decode(z)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode_eeg(x))

    def _reconstruction(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mean, log_scale = self._decode(z)
        if log_scale is None:
            return nn.functional.l1_loss(mean, y)
        return laplace_nll(y, mean, log_scale)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x, y = batch["x"], batch["y"]
        attention = self.attention_map(x)
        z_eeg = self.encode_eeg(x, attention)
        z_fmri = self.fmri.encode(y)
        loss = (self._reconstruction(z_eeg, y)
                + 1.0 - nn.functional.cosine_similarity(z_eeg, z_fmri, dim=1).mean())
        if self.fmri_reconstruction:
            loss = loss + self._reconstruction(z_fmri, y)
        if self.variational:
            loss = loss + self.kl_weight * self.readout.kl() / self.readout.mu.numel()
        if self.organize:
            loss = loss + self.organize * organize_channels(attention)
        return loss


# The same network with Calhas' further layers switched on, selectable with ``--models`` (the
# group level has no per-model settings): DCT decoder, variational read-out with the Laplacian
# loss, OrganizeChannels on the attention.
register("topo-attention-calhas", lr=3e-3, paper=PAPER + "; layers of the EEG-to-fMRI package "
         "(Calhas 2023): inverse-DCT decoder, variational dense read-out, Laplacian loss, "
         "OrganizeChannels", defaults={**DEFAULTS, "decoder": "dct", "variational": True,
                                       "organize": 1.0})(TopoAttention)
