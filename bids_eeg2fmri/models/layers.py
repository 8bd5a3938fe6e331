"""Building blocks shared by the models: sparsemax, positions, residual 3-D convolutions, random
Fourier features and a BOLD volume autoencoder."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .base import GridCodec, ModelShape


def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo 2016): the Euclidean projection of ``z`` onto the simplex.

    Like softmax it returns non-negative weights summing to 1, but small scores get exactly zero:
    ``p = max(z − τ, 0)`` with ``τ`` chosen so that the weights sum to 1, found from the sorted
    scores as ``τ = (Σ_{j≤k} z_(j) − 1) / k`` for the largest ``k`` with ``1 + k·z_(k) > Σ_{j≤k} z_(j)``.
    """
    z = z.transpose(dim, -1)
    z = z - z.max(dim=-1, keepdim=True).values  # shift-invariant; keeps the sums well scaled
    zs, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    cumsum = zs.cumsum(dim=-1)
    support = (1 + k * zs) > cumsum
    k_z = support.to(z.dtype).sum(dim=-1, keepdim=True)
    tau = (cumsum.gather(-1, k_z.long() - 1) - 1) / k_z
    return torch.clamp(z - tau, min=0).transpose(dim, -1)


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """The fixed sine/cosine position table of Vaswani et al. 2017, ``(n, d)``."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return table


def causal_mask(n: int, device: torch.device) -> torch.Tensor:
    """Additive attention mask letting position ``i`` see positions ``≤ i`` only."""
    return torch.triu(torch.full((n, n), float("-inf"), device=device), diagonal=1)


class ResBlock3d(nn.Module):
    """Two 3×3×3 convolutions with a skip connection (ResNet-18 block in 3-D), optional stride."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(1, c_out)
        self.norm2 = nn.GroupNorm(1, c_out)
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out
                     else nn.Conv3d(c_in, c_out, 1, stride=stride))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(h)) + self.skip(x))


class RandomFourierFeatures(nn.Module):
    """``φ(z) = sqrt(2/D)·cos(zΩ + b)`` with fixed Gaussian ``Ω`` and uniform ``b`` (Rahimi & Recht 2007).

    The projection is drawn once and stored as buffers (saved in checkpoints, never trained).
    """

    def __init__(self, d_in: int, n_features: int, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("omega", torch.randn(d_in, n_features) * scale)
        self.register_buffer("phase", torch.rand(n_features) * 2 * math.pi)
        self.norm = math.sqrt(2.0 / n_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm * torch.cos(z @ self.omega + self.phase)


class VolumeAutoencoder(nn.Module):
    """BOLD volume ↔ latent vector (``with_decoder=False``: the encoder half only).

    With a grid: a 3-D convolutional encoder (two stride-2 stages) and a transposed-convolution
    decoder cropped back to the grid; without one (regions): a two-layer dense autoencoder.
    """

    def __init__(self, shape: ModelShape, latent: int = 32, channels: int = 8,
                 with_decoder: bool = True) -> None:
        super().__init__()
        self.codec = GridCodec(shape)
        self.conv = shape.grid is not None
        if self.conv:
            c = channels
            self.encoder = nn.Sequential(
                nn.Conv3d(1, c, 3, padding=1), nn.GELU(),
                nn.Conv3d(c, 2 * c, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv3d(2 * c, 2 * c, 3, stride=2, padding=1), nn.GELU())
            self.small = tuple(int(math.ceil(s / 4)) for s in self.codec.grid_shape)
            self.to_latent = nn.Linear(2 * c * int(np.prod(self.small)), latent)
            self.c2 = 2 * c
            if not with_decoder:
                return
            self.from_latent = nn.Linear(latent, 2 * c * int(np.prod(self.small)))
            self.decoder = nn.Sequential(
                nn.GELU(),
                nn.ConvTranspose3d(2 * c, 2 * c, 4, stride=2, padding=1), nn.GELU(),
                nn.ConvTranspose3d(2 * c, c, 4, stride=2, padding=1), nn.GELU(),
                nn.Conv3d(c, 1, 3, padding=1))
        else:
            hidden = max(latent, min(256, 2 * shape.n_targets))
            self.encoder = nn.Sequential(nn.Linear(shape.n_targets, hidden), nn.GELU())
            self.to_latent = nn.Linear(hidden, latent)
            if not with_decoder:
                return
            self.from_latent = nn.Linear(latent, hidden)
            self.decoder = nn.Sequential(nn.GELU(), nn.Linear(hidden, shape.n_targets))

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, n_targets)`` → ``(B, latent)``."""
        if not self.conv:
            return self.to_latent(self.encoder(y))
        h = self.encoder(self.codec.to_grid(y)[:, None])
        return self.to_latent(h.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, latent)`` → ``(B, n_targets)``."""
        if not self.conv:
            return self.decoder(self.from_latent(z))
        h = self.from_latent(z).reshape(z.shape[0], self.c2, *self.small)
        v = self.decoder(h)[:, 0]
        x, y, zz = self.codec.grid_shape
        return self.codec.from_grid(v[:, :x, :y, :zz])

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(y))


# ------------------------------------------------------------------ Calhas' layers (issue 15)
def dct_basis(n: int, k: int) -> torch.Tensor:
    """The first ``k`` orthonormal DCT-II basis vectors of length ``n``, as columns ``(n, k)``:
    coefficients ``c`` map to the signal ``B @ c`` (the inverse DCT of ``c`` zero-padded to
    ``n``)."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(k, dtype=torch.float64)[None]
    basis = torch.cos(math.pi * (2 * i + 1) * j / (2 * n)) * math.sqrt(2.0 / n)
    basis[:, 0] /= math.sqrt(2.0)
    return basis.float()


class DCTDecoder(nn.Module):
    """The lowest ``fraction`` of 3-D DCT coefficients along each grid axis → inverse DCT →
    volume (Calhas' ``padded_iDCT3D``: the coefficients are zero-padded to the grid and
    inverse-transformed, so the synthesized volume is spatially smooth by construction).

    Without a grid (region targets) the "grid" is the ``(n, 1, 1)`` column of
    :class:`~.base.GridCodec`, and the decoder keeps the lowest ``fraction`` of its 1-D DCT.
    """

    def __init__(self, shape: ModelShape, fraction: float = 0.5) -> None:
        super().__init__()
        self.codec = GridCodec(shape)
        self.n_coef = tuple(max(1, int(math.ceil(s * fraction))) for s in self.codec.grid_shape)
        for axis, (n, k) in enumerate(zip(self.codec.grid_shape, self.n_coef)):
            self.register_buffer(f"basis{axis}", dct_basis(n, k), persistent=False)

    def from_coefficients(self, c: torch.Tensor) -> torch.Tensor:
        """Flat coefficients ``(B, prod(n_coef))`` → targets ``(B, n_targets)``."""
        c = c.reshape(c.shape[0], *self.n_coef)
        v = torch.einsum("bijk,xi,yj,zk->bxyz", c, self.basis0, self.basis1, self.basis2)
        return self.codec.from_grid(v)


class VariationalDense(nn.Module):
    """Dense layer with a mean-field Gaussian posterior over its weights (Bayes by backprop,
    Blundell et al. 2015; Calhas' ``DenseVariational`` read-out) and a per-output Laplace scale.

    Training draws weights with the reparameterisation trick; evaluation uses the posterior mean.
    ``forward`` returns ``(mean, log_scale)``; :meth:`kl` is the KL divergence of the posterior
    from the ``N(0, prior_sd²)`` prior, summed over weights.
    """

    def __init__(self, d_in: int, d_out: int, prior_sd: float = 1.0) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.randn(d_in, d_out) / math.sqrt(d_in))
        self.rho = nn.Parameter(torch.full((d_in, d_out), -5.0))
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.log_scale = nn.Parameter(torch.zeros(d_out))
        self.prior_sd = prior_sd

    def sd(self) -> torch.Tensor:
        return nn.functional.softplus(self.rho)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.mu + self.sd() * torch.randn_like(self.mu) if self.training else self.mu
        return h @ w + self.bias, self.log_scale.expand(h.shape[0], -1)

    def kl(self) -> torch.Tensor:
        var_ratio = (self.sd() / self.prior_sd) ** 2
        return 0.5 * (var_ratio + (self.mu / self.prior_sd) ** 2 - 1 - torch.log(var_ratio)).sum()


def laplace_nll(y: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``y`` under ``Laplace(mean, exp(log_scale))``:
    ``|y − μ|/b + log(2b)`` — the MAE with a learned scale (the Laplacian loss)."""
    return ((y - mean).abs() * torch.exp(-log_scale) + log_scale + math.log(2.0)).mean()


def organize_channels(attention: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Calhas' OrganizeChannels regulariser of a ``(B, C, C)`` attention map with rows summing to
    1: ``−Σ_j log Σ_i A_ij`` averaged over the batch. It is smallest when every channel is
    attended to by some row (column sums near 1), so the attention re-orders channels instead of
    selecting a few and discarding the rest."""
    return -torch.log(attention.sum(dim=1) + eps).sum(dim=1).mean()
