"""Group figures: cross-validated scores, learning curves, single-region analysis, FC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .common import PathLike, save_svg


def plot_cv_scores(summary: pd.DataFrame, out_path: PathLike) -> Path:
    """Bar plot of cross-validated scores per model and direction, with baselines and ceiling.

    Parameters
    ----------
    summary
        One row per (direction, model) with columns ``direction``, ``model``, ``r_mean``,
        ``r_sem``, ``mse_mean``, ``mse_sem`` and optionally ``r_driven_mean``/``_sem`` (r over
        the simulator's driven targets, a second bar), ``noise_ceiling_mean`` (their ceiling),
        ``baseline_mean_mse_mean``, ``baseline_subject_mse_mean`` (as made by
        :func:`bids_eeg2fmri.reports.html.summarise_cv`).
    out_path
        Output ``.svg``.

    Returns
    -------
    pathlib.Path
    """
    directions = list(dict.fromkeys(summary["direction"]))
    fig, axes = plt.subplots(2, len(directions), figsize=(4.5 * len(directions) + 1, 6.5),
                             squeeze=False)
    for j, direction in enumerate(directions):
        sub = summary[summary["direction"] == direction].reset_index(drop=True)
        x = np.arange(len(sub))
        ax = axes[0, j]
        # On simulated data the ceiling belongs to the driven targets: their r gets its own bar,
        # with the ceiling drawn over it rather than over the all-target r.
        driven = "r_driven_mean" in sub and bool(sub["r_driven_mean"].notna().any())
        ceiling = "noise_ceiling_mean" in sub and bool(sub["noise_ceiling_mean"].notna().any())
        w = 0.4 if driven else 0.8
        ax.bar(x - w / 2 if driven else x, sub["r_mean"], w, yerr=sub["r_sem"], color="C0",
               capsize=3, label="all targets" if driven else None)
        tops = [(sub["r_mean"] + sub["r_sem"].fillna(0)).to_numpy(float), np.zeros(1)]
        if driven:
            err = sub["r_driven_sem"] if "r_driven_sem" in sub else None
            ax.bar(x + w / 2, sub["r_driven_mean"], w, yerr=err, color="C2", capsize=3,
                   label="driven targets")
            tops.append((sub["r_driven_mean"] + (0 if err is None else err.fillna(0)))
                        .to_numpy(float))
        top = float(np.nanmax(np.concatenate(tops)))
        if ceiling:
            ax.scatter(x + w / 2 if driven else x, sub["noise_ceiling_mean"], marker="_",
                       s=600 * w, color="r", zorder=3, label="noise ceiling")
            top = max(top, float(np.nanmax(sub["noise_ceiling_mean"])))
        if driven or ceiling:
            ax.legend(fontsize=7, frameon=False, loc="upper left", ncol=3)
        # Head room so the legend never covers a bar or a ceiling mark.
        ax.set_ylim(top=top * 1.25 if top > 0 else 0.1)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, sub["model"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("Pearson r (mean ± SEM over folds)")
        ax.set_title(direction, fontsize=10)
        ax = axes[1, j]
        bars = [("model", "mse_mean", "mse_sem", "C0"),
                ("training-mean baseline", "baseline_mean_mse_mean", "baseline_mean_mse_sem",
                 "0.6"),
                ("subject-mean baseline", "baseline_subject_mse_mean", "baseline_subject_mse_sem",
                 "0.3")]
        bars = [b for b in bars if b[1] in sub and sub[b[1]].notna().any()]
        w = 0.8 / len(bars)
        for k, (label, col, err, colour) in enumerate(bars):
            ax.bar(x + (k - (len(bars) - 1) / 2) * w, sub[col], w,
                   yerr=sub[err] if err in sub else None, color=colour, label=label, capsize=2)
        ax.set_xticks(x, sub["model"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("MSE (mean ± SEM over folds)")
        ax.legend(fontsize=7, frameon=False, ncol=len(bars), loc="lower center",
                  bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return save_svg(fig, out_path)


def plot_learning_curves(curves: Mapping[str, pd.DataFrame], out_path: PathLike) -> Path:
    """Training and validation loss per epoch for each model (one panel per model).

    Parameters
    ----------
    curves
        Model label → DataFrame with ``epoch``, ``train_loss``, optional ``val_loss`` and optional
        ``fold`` (one line per fold; the trainer's ``losses.tsv`` concatenated).
    out_path
        Output ``.svg``.

    Returns
    -------
    pathlib.Path
    """
    names = list(curves)
    ncol = min(3, max(len(names), 1))
    nrow = int(np.ceil(max(len(names), 1) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        df = curves[name]
        folds = list(dict.fromkeys(df["fold"])) if "fold" in df else [None]
        for f in folds:
            d = df if f is None else df[df["fold"] == f]
            ax.plot(d["epoch"], d["train_loss"], color="C0", lw=1, alpha=0.8,
                    label="train" if f == folds[0] else None)
            if "val_loss" in d and d["val_loss"].notna().any():
                ax.plot(d["epoch"], d["val_loss"], color="C1", lw=1, alpha=0.8,
                        label="validation" if f == folds[0] else None)
        ax.set_title(name + (f" ({len(folds)} folds)" if folds != [None] else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        vals = df[["train_loss"] + (["val_loss"] if "val_loss" in df else [])].to_numpy(float)
        if np.isfinite(vals).any() and np.nanmin(vals) > 0 and \
                np.nanmax(vals) / np.nanmin(vals) > 20:
            ax.set_yscale("log")
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_svg(fig, out_path)


def plot_region_band(single_region: pd.DataFrame, out_path: PathLike) -> Path:
    """Region × band-cell heat map of the improvement in held-out r, ``*`` where significant.

    Parameters
    ----------
    single_region
        The single-region analysis table: ``region``, ``cell``, ``mean_improvement``, and
        optionally ``significant`` (bool; q < 0.05 and positive).
    out_path
        Output ``.svg``.

    Returns
    -------
    pathlib.Path
    """
    imp = single_region.pivot(index="region", columns="cell", values="mean_improvement")
    sig = (single_region.pivot(index="region", columns="cell", values="significant")
           .reindex(index=imp.index, columns=imp.columns).fillna(False).astype(bool)
           if "significant" in single_region else pd.DataFrame(False, imp.index, imp.columns))
    lim = float(np.nanmax(np.abs(imp.to_numpy(float)))) if np.isfinite(imp.to_numpy(float)).any() \
        else 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * imp.shape[1] + 2, 1.0 + 0.35 * imp.shape[0] + 1))
    im = ax.imshow(imp.to_numpy(float), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(imp.shape[0]):
        for j in range(imp.shape[1]):
            if sig.iat[i, j]:
                strong = abs(imp.iat[i, j]) > 0.6 * lim  # white on the darkest colours
                ax.text(j, i, "*", ha="center", va="center", fontsize=14, fontweight="bold",
                        color="w" if strong else "k")
    ax.set_xticks(range(imp.shape[1]), imp.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(imp.shape[0]), imp.index, fontsize=8)
    fig.colorbar(im, ax=ax, label="Δr (region + non-GM vs non-GM)")
    ax.set_title("improvement in held-out r; * q < 0.05 (BH)", fontsize=9)
    fig.tight_layout()
    return save_svg(fig, out_path)


def plot_fc_matrices(measured: np.ndarray, predicted: Mapping[str, np.ndarray], out_path: PathLike,
                     *, labels: Sequence[str] | None = None) -> Path:
    """Functional-connectivity matrices: measured and each model's prediction, same colour scale.

    Parameters
    ----------
    measured
        ``(R, R)`` correlation matrix of the measured region time series.
    predicted
        Model name → ``(R, R)`` matrix of its predicted series.
    out_path
        Output ``.svg``.
    labels
        Region names (ticks drawn when there are at most 30).

    Returns
    -------
    pathlib.Path
    """
    mats = [("measured", np.asarray(measured, float))] + \
        [(k, np.asarray(v, float)) for k, v in predicted.items()]
    n = len(mats)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.9), squeeze=False)
    iu = np.triu_indices(mats[0][1].shape[0], k=1)
    for ax, (name, mat) in zip(axes[0], mats):
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        title = name
        if name != "measured":
            a, b = mat[iu], mats[0][1][iu]
            keep = np.isfinite(a) & np.isfinite(b)
            sim = np.corrcoef(a[keep], b[keep])[0, 1] if keep.sum() > 2 and a[keep].std() > 0 \
                else float("nan")
            title += f"\nsimilarity r = {sim:.2f}"
        ax.set_title(title, fontsize=9)
        if labels is not None and len(labels) <= 30:
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
            ax.set_yticks(range(len(labels)), labels, fontsize=5)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="Pearson r")
    return save_svg(fig, out_path)
