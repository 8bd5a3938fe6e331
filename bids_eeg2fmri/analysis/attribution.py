"""Which EEG inputs an EEG→fMRI model uses: relevance of channel × frequency × time lag.

The explained quantity is a scalar per sample:

- a **region** (``targets`` given): the mean synthesized value over those targets, ``f_R(x)``;
- the **whole volume** (``targets`` None): ``g(x) = ½‖f(x) − f(x₀)‖²``, how far the synthesized
  volume moves from the baseline's, whichever direction each target moves in.

The baseline ``x₀`` is the zero input: EEG is z-scored per participant, so zero is the
participant's mean spectrogram. Deep models are explained with **integrated gradients**
(Sundararajan et al. 2017, Captum's implementation): ``IG_i = (x_i − x₀_i)·∫₀¹ ∂F/∂x_i(x₀ +
α(x − x₀)) dα``, whose sum over inputs is ``F(x) − F(x₀)`` (completeness; Captum reports the gap
as the convergence delta). Calhas et al. use layer-wise relevance propagation, which needs a rule
per layer type; IG needs only gradients, so it covers every registered model, including the
attention and transformer ones. For ``ridge`` the same integral has a closed form: a region's
relevance is coefficient × input, ``x_i·w̄_i`` (``w̄`` the mean of the region's coefficient
columns), and the whole volume's is ``x_i·[W(½Wᵀx + b − f(x₀))]_i``, exact without path steps.

Per sample the relevance is a ``(window, channels, frequencies, frames)`` array; the summary is
its mean absolute value over samples (signed mean kept beside it), frames summed within each TR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..data.windows import RunArrays


def _evenly(samples: pd.DataFrame, n: int) -> pd.DataFrame:
    """At most ``n`` rows spread evenly over the table (every run and participant represented)."""
    if len(samples) <= n:
        return samples
    keep = np.unique(np.linspace(0, len(samples) - 1, n).round().astype(int))
    return samples.iloc[keep].reset_index(drop=True)


def _inputs(fitted: Any, runs: Sequence[RunArrays], samples: pd.DataFrame) -> torch.Tensor:
    ds = fitted.calibrated(runs, samples, None).dataset(runs, samples)
    return torch.cat([b["x"] for b in DataLoader(ds, batch_size=256, shuffle=False)]).float()


def ridge_relevance(weight: np.ndarray, bias: np.ndarray, x: np.ndarray,
                    targets: Sequence[int] | None = None) -> np.ndarray:
    """Closed-form integrated gradients of a linear map ``f(x) = x·W + b`` from a zero baseline.

    Parameters
    ----------
    weight, bias
        ``(n_inputs, n_targets)`` and ``(n_targets,)``.
    x
        ``(n, n_inputs)`` flattened inputs.
    targets
        Target indices of the explained region; None explains the whole volume (``g`` above).

    Returns
    -------
    numpy.ndarray
        ``(n, n_inputs)`` relevance; each row sums to ``F(x) − F(0)``.
    """
    if targets is not None:
        return x * weight[:, list(targets)].mean(axis=1)[None]
    # ∫₀¹ W(f(αx) − f(0)) dα with f(αx) − f(0) = α·xW: the mean over the path is ½·xW.
    return x * ((0.5 * (x @ weight)) @ weight.T)


def integrated_gradients(model: torch.nn.Module, x: torch.Tensor,
                         targets: Sequence[int] | None = None, *, steps: int = 32,
                         batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Integrated gradients of a torch model's region or whole-volume output (Captum).

    Returns
    -------
    relevance, delta
        ``x``-shaped relevance and the per-sample completeness gap ``Σ IG − (F(x) − F(x₀))``.
    """
    from captum.attr import IntegratedGradients

    model = model.to("cpu").eval()
    x0 = torch.zeros_like(x[:1])
    with torch.no_grad():
        f0 = model(x0)

    def scalar(inp: torch.Tensor) -> torch.Tensor:
        out = model(inp)
        if targets is not None:
            return out[:, list(targets)].mean(dim=1)
        return 0.5 * ((out - f0) ** 2).sum(dim=1)

    ig = IntegratedGradients(scalar)
    rel, deltas = [], []
    # Dropout and batch statistics off: the gradients are the inference path's.
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].detach()
        a, d = ig.attribute(xb, baselines=x0.expand_as(xb), n_steps=steps,
                            method="gausslegendre", return_convergence_delta=True,
                            internal_batch_size=max(batch_size, steps))
        rel.append(a.detach().numpy())
        deltas.append(d.detach().numpy())
    return np.concatenate(rel), np.concatenate(deltas)


def relevance_maps(fitted: Any, runs: Sequence[RunArrays], samples: pd.DataFrame, *,
                   targets: Sequence[int] | None = None, steps: int = 32,
                   max_samples: int = 256) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per-sample relevance of a fitted EEG→fMRI model's inputs.

    Parameters
    ----------
    fitted
        A :class:`~bids_eeg2fmri.training.model.FittedModel` (EEG→fMRI).
    runs, samples
        The data and the sample rows to explain (at most ``max_samples``, drawn evenly).
    targets
        Target indices of the explained region; None for the whole volume.
    steps
        Integrated-gradients path steps (unused for ``ridge``).

    Returns
    -------
    relevance, signed, info
        Mean absolute and mean signed relevance over samples, each
        ``(window, channels, frequencies)`` (STFT frames summed within each TR), and ``info``
        (``method``, ``n_samples``, ``max_delta``: the largest relative completeness gap).
    """
    x = _inputs(fitted, runs, _evenly(samples, max_samples))
    net = fitted.model
    if fitted.name == "ridge" and hasattr(net, "fit_closed_form"):
        feats = net.features(x).numpy().astype(np.float64)
        rel = ridge_relevance(net.weight.numpy().astype(np.float64),
                              net.bias.numpy().astype(np.float64), feats, targets)
        shape = list(x.shape)
        if net.pool_frames:  # inputs averaged over frames: share each mean's relevance out
            shape[-1] = 1
        rel = rel.reshape(shape)
        method, gap = "closed form (coefficient × input)", 0.0
    else:
        rel, delta = integrated_gradients(net, x, targets, steps=steps)
        with torch.no_grad():
            out = net(x) - net(torch.zeros_like(x[:1]))
        scale = (out[:, list(targets)].mean(1).abs() if targets is not None
                 else 0.5 * (out ** 2).sum(1)).numpy()
        gap = float(np.max(np.abs(delta) / np.maximum(scale, 1e-12)))
        method = f"integrated gradients (Captum, {steps} steps, zero baseline)"
    per_tr = rel.sum(axis=-1)                                      # (n, window, C, F)
    return (np.abs(per_tr).mean(axis=0), per_tr.mean(axis=0),
            {"method": method, "n_samples": int(len(x)), "max_delta": gap})


def relevance_table(relevance: np.ndarray, signed: np.ndarray, channels: Sequence[str],
                    frequencies: Sequence[float]) -> pd.DataFrame:
    """Long table: one row per lag (TRs before the target volume, 0 = the volume's own TR),
    channel and frequency, with ``relevance`` (mean |IG|, normalised to sum to 1) and
    ``signed`` (mean IG, same scale)."""
    w, c, f = relevance.shape
    total = float(relevance.sum()) or 1.0
    lag, ch, fr = np.meshgrid(np.arange(w)[::-1], np.arange(c), np.arange(f), indexing="ij")
    return pd.DataFrame({"lag_trs": lag.ravel(), "channel": np.asarray(channels)[ch.ravel()],
                         "frequency": np.asarray(frequencies, float)[fr.ravel()],
                         "relevance": relevance.ravel() / total,
                         "signed": signed.ravel() / total})


def band_channel_relevance(table: pd.DataFrame, bands: dict[str, Sequence[float]]
                           ) -> pd.DataFrame:
    """Relevance per channel and band (summed over lags and the band's frequencies):
    channels × bands, the values a topomap per band shows."""
    out = {}
    for band, (lo, hi) in bands.items():
        sel = table[(table["frequency"] >= lo) & (table["frequency"] < hi)]
        out[band] = sel.groupby("channel", sort=False)["relevance"].sum()
    channels = list(dict.fromkeys(table["channel"]))
    return pd.DataFrame(out).reindex(channels).fillna(0.0)


def attention_matrix(fitted: Any, runs: Sequence[RunArrays], samples: pd.DataFrame, *,
                     max_samples: int = 512) -> np.ndarray:
    """Mean over samples of a ``topo-attention`` model's sparse channel-to-channel attention
    ``(channels, channels)`` (row ``i``: how channel ``i`` is re-expressed from the others)."""
    x = _inputs(fitted, runs, _evenly(samples, max_samples))
    net = fitted.model.to("cpu").eval()
    with torch.no_grad():
        return net.attention_map(x).mean(dim=0).numpy().astype(np.float64)
