"""``ridge``: closed-form ridge regression from the (lagged) EEG window to every target.

The flattened window — every TR of the window × channel × frequency (× STFT frame, or averaged
frames with ``pool_frames``) — is the lagged design matrix; the regularisation ``alpha`` is chosen
per fit by inner cross-validation over leakage-safe folds of the training data (whole subjects when
there are at least three, otherwise buffered time blocks), by default separately for every target
(``alpha_per_target``): with thousands of targets of which few carry signal, one shared alpha is
set by the noise targets and shrinks the signal ones to nothing, as voxel-wise encoding models
have long found. One eigendecomposition per inner fold gives the solutions for the whole alpha
grid. The baseline every deep model must beat.

Kept instead of :class:`sklearn.linear_model.RidgeCV` (measured, scikit-learn 1.9.1):
``RidgeCV(alpha_per_target=True, cv=<folds>)`` raises "cv!=None and alpha_per_target=True are
incompatible", and its only per-target mode (efficient leave-one-out) scores each TR against
models fitted on its autocorrelated neighbours, which the subject/block folds here exist to avoid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..base import EEG2fMRIModel, ModelShape
from ..registry import register

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))


@register("ridge", defaults={"alphas": list(DEFAULT_ALPHAS), "pool_frames": False,
                            "alpha_per_target": True},
          lr=0.0, paper="ridge regression baseline (e.g. Meir-Hasson et al. 2014, Bricman & Borst "
          "2021 report it as their reference)", closed_form=True)
class Ridge(EEG2fMRIModel):
    """Linear map ``y = x·W + b`` fitted by :meth:`fit_closed_form`."""

    def __init__(self, shape: ModelShape, alphas: Sequence[float] = DEFAULT_ALPHAS,
                 pool_frames: bool = False, alpha_per_target: bool = True) -> None:
        super().__init__(shape)
        self.alphas = [float(a) for a in alphas]
        self.pool_frames = bool(pool_frames)
        self.alpha_per_target = bool(alpha_per_target)
        n_in = shape.n_inputs // (shape.n_frames if pool_frames else 1)
        self.register_buffer("weight", torch.zeros(n_in, shape.n_targets))
        self.register_buffer("bias", torch.zeros(shape.n_targets))
        self.register_buffer("alpha", torch.full((shape.n_targets,), float("nan")))

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
            ``alpha`` (the median of the per-target alphas), ``alpha_min``/``alpha_max`` and the
            inner-CV mean squared error per alpha over all targets (``mse_alpha_<a>``).
        """
        feats = np.asarray(self.features(x), dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        scores = np.zeros((len(self.alphas), y.shape[1]))
        for tr, te in inner_folds:
            for j, pred in enumerate(_ridge_predictions(feats[tr], y[tr], feats[te], self.alphas)):
                scores[j] += np.mean((pred - y[te]) ** 2, axis=0) / len(inner_folds)
        if not inner_folds:
            best = np.full(y.shape[1], len(self.alphas) // 2)
        elif self.alpha_per_target:
            best = np.argmin(scores, axis=0)
        else:
            best = np.full(y.shape[1], int(np.argmin(scores.mean(axis=1))))
        alpha = np.asarray(self.alphas)[best]
        w, b = ridge_solution(feats, y, alpha)
        self.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        self.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        self.alpha.copy_(torch.as_tensor(alpha, dtype=torch.float32))
        return {"alpha": float(np.median(alpha)), "alpha_min": float(alpha.min()),
                "alpha_max": float(alpha.max()),
                **{f"mse_alpha_{a:g}": float(s) for a, s in zip(self.alphas, scores.mean(axis=1))}}


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


def ridge_solution(x: np.ndarray, y: np.ndarray, alpha: np.ndarray | float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights and intercept with one alpha per target (or one for all).

    The smaller Gram matrix of the centred data is diagonalised — ``XᵀX = V S² Vᵀ`` when there are
    fewer features than samples, else ``XXᵀ = U S² Uᵀ`` (the dual form) — so target ``t`` costs
    one scaled product: ``w_t = V (S² + α_t)⁻¹ Vᵀ Xᵀy_t`` or ``w_t = Xᵀ U (S² + α_t)⁻¹ Uᵀ y_t``.
    """
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (y.shape[1],))
    if xc.shape[1] <= xc.shape[0]:
        s2, v = np.linalg.eigh(xc.T @ xc)
        w = v @ ((v.T @ (xc.T @ yc)) / (np.clip(s2, 0, None)[:, None] + alpha[None, :]))
    else:
        s2, u = np.linalg.eigh(xc @ xc.T)
        w = xc.T @ (u @ ((u.T @ yc) / (np.clip(s2, 0, None)[:, None] + alpha[None, :])))
    return w, ym - xm @ w
