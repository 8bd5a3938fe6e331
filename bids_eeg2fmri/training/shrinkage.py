"""Validation-calibrated shrinkage of a trained network's predictions towards the training mean.

A deep model trained on few participants can fit their idiosyncrasies so well that its held-out
predictions are worse than predicting the training mean, and early stopping alone cannot fall
back to that mean: it only chooses among epochs of the network. Ridge regression avoids this with
its penalty, chosen by inner validation. The equivalent for a network is a scale
``s_j ∈ [0, 1]`` per target ``j`` multiplying its (normalised) predictions, where zero is the
training mean: ``s_j = clip(<p_j, y_j> / <p_j, p_j>, MIN_SCALE, 1)`` over the validation samples
minimises their squared error (``s_j`` at the floor when target ``j``'s predictions do not
co-vary with it, ``s_j = 1`` when they are as large as the data support). The floor is a tiny
positive scale rather than 0: Pearson r is invariant to a positive scale, so every target's r
stays the network's own; a zero scale would make a target's prediction constant, its r undefined
and dropped from the NaN-skipping means, which would raise r over the surviving targets by
selection rather than prediction. Per target, because a few targets (the
EEG-coupled regions) can be predictable while the rest are noise the network memorised; one scale
for all would be set by the many. The validation rows are those early stopping already holds out,
never the test fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import distributed as D

#: The smallest scale: predictions 1000× smaller than the network's add < 1e-6 of their power to
#: the squared error, yet keep their per-target r (module docstring).
MIN_SCALE = 1e-3


def optimal_scale(cross: np.ndarray | float, power: np.ndarray | float) -> np.ndarray:
    """``clip(cross / power, MIN_SCALE, 1)``: the squared-error-optimal scale of predictions ``p``
    for targets ``y`` given ``cross = <p, y>`` and ``power = <p, p>`` (per target, elementwise),
    floored at :data:`MIN_SCALE`; 1 where ``power`` is 0 (constant predictions need no
    shrinking)."""
    cross, power = np.asarray(cross, dtype=float), np.asarray(power, dtype=float)
    ratio = np.divide(cross, power, out=np.ones_like(cross), where=power > 0)
    return np.clip(ratio, MIN_SCALE, 1.0)


def calibrate(model: torch.nn.Module, loader: DataLoader, device: torch.device,
              dtype: torch.dtype | None) -> np.ndarray | None:
    """Shrink ``model``'s predictions towards zero by the per-target scales that minimise the
    squared error on ``loader``'s samples; return the scales, or None where the model cannot be
    shrunk.

    Under torchrun the sums are combined over processes, so every process applies the same scale.
    """
    if not getattr(model, "shrinkable", False):
        return None
    cross, power = prediction_sums(model, loader, device, dtype)
    if D.is_distributed():
        both = np.concatenate([np.atleast_1d(cross), np.atleast_1d(power)])
        sums = D.all_reduce_sum({str(i): v for i, v in enumerate(both)})
        cross, power = np.split(np.array([sums[str(i)] for i in range(len(both))]), 2)
    return shrink(model, cross, power)


def prediction_sums(model: torch.nn.Module, loader: DataLoader, device: torch.device,
                    dtype: torch.dtype | None) -> tuple[np.ndarray, np.ndarray]:
    """Per target, ``<p, y>`` and ``<p, p>`` of ``model``'s (normalised) predictions ``p`` and
    the targets ``y`` over ``loader``'s samples (``[0.]`` for an empty loader)."""
    model.eval()
    cross: Any = 0.0
    power: Any = 0.0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for batch in loader:
            p = model(batch["x"].to(device)).double().flatten(1)
            y = batch["y"].to(device).double().flatten(1)
            cross = cross + (p * y).sum(dim=0).cpu().numpy()
            power = power + (p * p).sum(dim=0).cpu().numpy()
    return np.atleast_1d(np.asarray(cross, float)), np.atleast_1d(np.asarray(power, float))


def shrink(model: torch.nn.Module, cross: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Scale a shrinkable ``model``'s predictions by :func:`optimal_scale` of the validation sums
    ``cross`` and ``power``; return the scales."""
    scale = optimal_scale(cross, power)
    model.shrink_output(torch.as_tensor(scale, dtype=torch.float32))
    return scale


def shrinkage_summary(scale: np.ndarray | None) -> dict[str, float]:
    """The provenance entries of the scales: their mean and the fraction of targets shrunk to
    the floor, i.e. practically to the training mean (empty when the model was not shrunk)."""
    if scale is None:
        return {}
    return {"output_shrinkage_mean": float(np.mean(scale)),
            "output_shrinkage_floor_fraction": float(np.mean(scale <= MIN_SCALE))}
