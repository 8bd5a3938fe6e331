"""Group figures of the Calhas extensions: classification confusion matrices, attribution
topomaps per EEG band (MNE) and the topographical attention map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .common import PathLike, save_svg


def plot_confusion(matrices: Mapping[str, np.ndarray], classes: Sequence[str],
                   out_path: PathLike, *, subtitles: Mapping[str, str] | None = None) -> Path:
    """One confusion matrix (participants, rows true, columns predicted) per objective."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.4), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        m = np.asarray(m)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1, m.max()))
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(int(v)), ha="center", va="center",
                    color="white" if v > m.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}\n{(subtitles or {}).get(name, '')}", fontsize=9)
    fig.tight_layout()
    return save_svg(fig, out_path)


def plot_band_topomaps(relevance: Mapping[str, pd.DataFrame],
                       positions: Mapping[str, np.ndarray], out_path: PathLike) -> Path:
    """Relevance per channel as scalp maps: one row per model, one column per EEG band.

    Parameters
    ----------
    relevance
        Model → channels × bands table
        (:func:`~bids_eeg2fmri.analysis.attribution.band_channel_relevance`).
    positions
        Channel → 3-D head position (m); channels without one are left out.
    """
    import mne

    models = list(relevance)
    bands = list(next(iter(relevance.values())).columns)
    fig, axes = plt.subplots(len(models), len(bands), figsize=(2.1 * len(bands) + 0.8,
                                                              2.2 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        table = relevance[model]
        chans = [c for c in table.index if c in positions]
        if len(chans) < 3:
            raise ValueError("fewer than three channels have head positions")
        pos = np.array([positions[c][:2] for c in chans])
        vmax = float(table.loc[chans].to_numpy().max()) or 1.0
        for j, band in enumerate(bands):
            ax = axes[i, j]
            im, _ = mne.viz.plot_topomap(table.loc[chans, band].to_numpy(), pos, axes=ax,
                                         show=False, cmap="Reds", vlim=(0, vmax), sphere=0.1,
                                         contours=0, extrapolate="head")
            if i == 0:
                ax.set_title(band, fontsize=9)
            if j == 0:
                ax.text(-0.15, 0.5, model, transform=ax.transAxes, rotation=90, va="center",
                        ha="right", fontsize=9)
        fig.colorbar(im, ax=list(axes[i]), shrink=0.7, label="relevance")
    return save_svg(fig, out_path)


def plot_attention(matrices: Mapping[str, pd.DataFrame], out_path: PathLike) -> Path:
    """Mean topographical attention (rows attend to columns) of each ``topo-attention`` model."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.8 * len(matrices), 4.4), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        im = ax.imshow(m.to_numpy(), cmap="viridis", vmin=0)
        n = len(m)
        step = max(1, n // 16)
        ax.set_xticks(range(0, n, step), list(m.columns)[::step], rotation=90, fontsize=7)
        ax.set_yticks(range(0, n, step), list(m.index)[::step], fontsize=7)
        ax.set_xlabel("attended channel")
        ax.set_ylabel("channel")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="mean attention")
    fig.tight_layout()
    return save_svg(fig, out_path)
