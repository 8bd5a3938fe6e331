"""``ridge``: closed-form ridge regression from the (lagged) EEG window to every target.

The flattened window — every TR of the window × channel × frequency (× STFT frame, or averaged
frames with ``pool_frames``) — is the lagged design matrix; the regularisation ``alpha`` is chosen
per fit by inner cross-validation over leakage-safe folds of the training data (whole subjects when
there are at least three, otherwise buffered time blocks). One eigendecomposition per inner fold gives the
solutions for the whole alpha grid. The baseline every deep model must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..base import EEG2fMRIModel, ModelShape
from ..registry import register

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))


@register("ridge", defaults={"alphas": list(DEFAULT_ALPHAS), "pool_frames": False},
          lr=0.0, paper="ridge regression baseline (e.g. Meir-Hasson et al. 2014, Bricman & Borst "
          "2021 report it as their reference)", closed_form=True)
class Ridge(EEG2fMRIModel):
    """Linear map ``y = x·W + b`` fitted by :meth:`fit_closed_form`."""

    def __init__(self, shape: ModelShape, alphas: Sequence[float] = DEFAULT_ALPHAS,
                 pool_frames: bool = False) -> None:
        super().__init__(shape)
        self.alphas = [float(a) for a in alphas]
        self.pool_frames = bool(pool_frames)
        n_in = shape.n_inputs // (shape.n_frames if pool_frames else 1)
        self.register_buffer("weight", torch.zeros(n_in, shape.n_targets))
        self.register_buffer("bias", torch.zeros(shape.n_targets))
        self.register_buffer("alpha", torch.tensor(float("nan")))

    def features(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Flatten ``(B, window, channels, freqs, frames)`` to the design matrix rows."""
        if self.pool_frames:
            x = x.mean(-1)
        return x.reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.weight + self.bias

    def fit_closed_form(self, x: np.ndarray, y: np.ndarray,
                        inner_folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """Choose alpha by inner CV, then fit on all of ``x``, ``y``.

        Parameters
        ----------
        x
            ``(n, window, channels, freqs, frames)`` normalised EEG windows.
        y
            ``(n, n_targets)`` normalised targets.
        inner_folds
            ``(train_rows, test_rows)`` pairs; empty to use the middle of the alpha grid.

        Returns
        -------
        dict
            ``alpha`` and the inner-CV mean squared error per alpha (``mse_alpha_<a>``).
        """
        feats = np.asarray(self.features(x), dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        scores = np.zeros(len(self.alphas))
        for tr, te in inner_folds:
            for j, pred in enumerate(_ridge_predictions(feats[tr], y[tr], feats[te], self.alphas)):
                scores[j] += np.mean((pred - y[te]) ** 2) / len(inner_folds)
        best = int(np.argmin(scores)) if inner_folds else len(self.alphas) // 2
        (w, b), = _ridge_path(feats, y, [self.alphas[best]])
        self.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        self.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        self.alpha.fill_(self.alphas[best])
        return {"alpha": self.alphas[best],
                **{f"mse_alpha_{a:g}": float(s) for a, s in zip(self.alphas, scores)}}


def _ridge_predictions(x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
                       alphas: Sequence[float]):
    """Predictions on ``x_test`` for each alpha without forming the weights.

    With the eigenvectors rotated into the test data once (``(x_test − x̄)V`` in the primal form,
    ``(x_test − x̄)Xᵀ U`` in the dual), each alpha costs one small product — the inner CV stays
    cheap when there are tens of thousands of features.
    """
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc, tc = x - xm, y - ym, x_test - xm
    if xc.shape[1] <= xc.shape[0]:
        s2, v = np.linalg.eigh(xc.T @ xc)
        proj, rot = v.T @ (xc.T @ yc), tc @ v
    else:
        s2, u = np.linalg.eigh(xc @ xc.T)
        proj, rot = u.T @ yc, (tc @ xc.T) @ u
    s2 = np.clip(s2, 0, None)
    for a in alphas:
        yield rot @ (proj / (s2 + a)[:, None]) + ym


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]):
    """Ridge solutions (weights, intercept) for each alpha from one eigendecomposition.

    The smaller Gram matrix of the centred data is diagonalised — ``XᵀX = V S² Vᵀ`` when there are
    fewer features than samples, else ``XXᵀ = U S² Uᵀ`` (the dual form) — so each alpha costs only
    matrix products: ``w = V (S² + α)⁻¹ Vᵀ Xᵀy`` or ``w = Xᵀ U (S² + α)⁻¹ Uᵀ y``.
    """
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    if xc.shape[1] <= xc.shape[0]:
        s2, v = np.linalg.eigh(xc.T @ xc)
        proj = v.T @ (xc.T @ yc)
        for a in alphas:
            w = v @ (proj / (np.clip(s2, 0, None) + a)[:, None])
            yield w, ym - xm @ w
    else:
        s2, u = np.linalg.eigh(xc @ xc.T)
        proj = u.T @ yc
        for a in alphas:
            w = xc.T @ (u @ (proj / (np.clip(s2, 0, None) + a)[:, None]))
            yield w, ym - xm @ w
