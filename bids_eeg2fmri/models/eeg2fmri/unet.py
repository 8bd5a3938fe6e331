"""``unet`` after Bruno et al. 2025's comparator: EEG features → latent → 3-D U-Net decoder.

The EEG window (every channel, frequency and frame of its TRs) is flattened and mapped by a dense
encoder to a latent vector. A dense layer spreads the latent over a coarse volume (a quarter of the
grid in every axis, ``4·filters`` feature maps), which is upsampled to the grid and run through a
two-level 3-D U-Net: a convolutional contracting path (full and half resolution), a bottleneck at
quarter resolution to which the coarse latent volume is added, and an expanding path of transposed
convolutions whose every level concatenates the contracting path's features of the same resolution
(the U-Net's skip connections, Ronneberger et al. 2015). A 1×1×1 convolution gives the volume.

Without a voxel grid (region targets) there is no space to convolve over: the latent goes through a
dense head to the regions instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..base import EEG2fMRIModel, GridCodec, ModelShape
from ..registry import register


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3×3×3 convolutions with group norm and GELU (one U-Net level)."""
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, padding=1), nn.GroupNorm(1, c_out), nn.GELU(),
                         nn.Conv3d(c_out, c_out, 3, padding=1), nn.GroupNorm(1, c_out), nn.GELU())


@register("unet", defaults={"latent": 64, "filters": 8, "hidden": 128, "dropout": 0.3}, lr=1e-3,
          paper="Bruno et al. 2025 (U-Net comparator: EEG latent → 3-D U-Net decoder)")
class EEGUNet(EEG2fMRIModel):
    """Dense EEG encoder → latent → 3-D U-Net decoder (voxels) or dense head (regions)."""

    def __init__(self, shape: ModelShape, latent: int = 64, filters: int = 8, hidden: int = 128,
                 dropout: float = 0.3) -> None:
        super().__init__(shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                     nn.Linear(shape.n_inputs, hidden), nn.GELU(),
                                     nn.Linear(hidden, latent), nn.GELU())
        self.conv = shape.grid is not None
        if not self.conv:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(latent, hidden), nn.GELU(),
                                      nn.Linear(hidden, shape.n_targets))
            return
        self.codec = GridCodec(shape)
        grid = self.codec.grid_shape
        # Sizes padded to a multiple of 4 so that two halvings and two doublings meet exactly.
        self.padded = tuple(4 * math.ceil(s / 4) for s in grid)
        self.coarse = tuple(s // 4 for s in self.padded)
        f = filters
        self.c4 = 4 * f
        self.to_volume = nn.Linear(latent, self.c4 * int(np.prod(self.coarse)))
        self.enc1 = _block(self.c4, f)
        self.enc2 = _block(f, 2 * f)
        self.bottom = _block(2 * f, self.c4)
        self.pool = nn.MaxPool3d(2)
        self.up2 = nn.ConvTranspose3d(self.c4, 2 * f, 2, stride=2)
        self.dec2 = _block(4 * f, 2 * f)
        self.up1 = nn.ConvTranspose3d(2 * f, f, 2, stride=2)
        self.dec1 = _block(2 * f, f)
        self.out = nn.Conv3d(f, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        if not self.conv:
            return self.head(z)
        coarse = self.to_volume(z).reshape(z.shape[0], self.c4, *self.coarse)
        e1 = self.enc1(nn.functional.interpolate(coarse, size=self.padded, mode="trilinear",
                                                 align_corners=False))
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2)) + coarse
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        gx, gy, gz = self.codec.grid_shape
        return self.codec.from_grid(self.out(d1)[:, 0, :gx, :gy, :gz])
