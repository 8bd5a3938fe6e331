"""Figures of synthesized BOLD (``--model-dir``): slices and region time courses beside the
measured series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from ... import metrics as M
from .common import ImageLike, load_img, PathLike, save_svg, zscore


def _as_series(img: ImageLike | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(img, np.ndarray):
        return np.asarray(img, dtype=np.float32), None
    im = load_img(img)
    return np.asarray(im.dataobj, dtype=np.float32), im.affine


def plot_synth_slices(synth: ImageLike | np.ndarray, measured: ImageLike | np.ndarray | None,
                      out_path: PathLike, *, volume: int | None = None, n_slices: int = 6,
                      mask: np.ndarray | None = None) -> Path:
    """Axial slices of one volume, synthesized vs measured, each z-scored per voxel over time.

    Both series are z-scored voxel by voxel over time so that the colours compare fluctuations,
    the quantity the models predict, not baseline intensity. A third row maps the voxel-wise
    temporal Pearson r between the two.

    Parameters
    ----------
    synth
        Synthesized 4-D series (image/path, or ``(x, y, z, t)`` array).
    measured
        Measured 4-D series on the same grid with the same volumes, or ``None`` (EEG-only
        participant: only the synthesized row is drawn).
    out_path
        Output ``.svg``.
    volume
        Volume to show; default the middle one.
    n_slices
        Axial slices spread over the brain.
    mask
        Boolean 3-D mask of voxels to show; default voxels where the synthesized series varies.

    Returns
    -------
    pathlib.Path
    """
    s, _ = _as_series(synth)
    m = _as_series(measured)[0] if measured is not None else None
    if m is not None and m.shape != s.shape:
        raise ValueError(f"synthesized {s.shape} and measured {m.shape} series differ in shape")
    if mask is None:
        mask = s.std(axis=-1) > 0
        if m is not None:
            mask &= m.std(axis=-1) > 0
    t = s.shape[-1] // 2 if volume is None else int(volume)
    zs = _zscore_time(s, mask)
    rows = [("synthesized", zs)]
    if m is not None:
        zm = _zscore_time(m, mask)
        rows.insert(0, ("measured", zm))
        r = np.where(mask, (zs * zm).mean(axis=-1), np.nan)
    zidx = np.flatnonzero(mask.any(axis=(0, 1)))
    zidx = zidx if zidx.size else np.arange(s.shape[2])
    slices = np.linspace(zidx.min(), zidx.max(), n_slices + 2)[1:-1].round().astype(int)
    n_rows = len(rows) + (1 if m is not None else 0)
    fig, axes = plt.subplots(n_rows, n_slices, figsize=(1.8 * n_slices + 1, 2.0 * n_rows + 0.3),
                             squeeze=False)
    for i, (name, z) in enumerate(rows):
        for j, k in enumerate(slices):
            ax = axes[i, j]
            im = ax.imshow(np.where(mask[:, :, k], z[:, :, k, t], np.nan).T, origin="lower",
                           cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
            if i == 0:
                ax.set_title(f"slice {k}", fontsize=8)
    fig.colorbar(im, ax=axes[:len(rows)].ravel().tolist(), shrink=0.8, label="z (over time)")
    if m is not None:
        for j, k in enumerate(slices):
            ax = axes[-1, j]
            im2 = ax.imshow(r[:, :, k].T, origin="lower", cmap="PuOr_r", vmin=-1, vmax=1,
                            interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel("r over time")
        fig.colorbar(im2, ax=axes[-1].tolist(), shrink=0.8, label="Pearson r")
        fig.suptitle(f"volume {t}; median voxel r = {np.nanmedian(r[mask]):.3f}", fontsize=10)
    else:
        fig.suptitle(f"volume {t} (no measured BOLD to compare with)", fontsize=10)
    return save_svg(fig, out_path)


def _zscore_time(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    z = np.divide(x - mu, sd, out=np.zeros_like(x), where=sd > 0)
    z[~mask] = 0
    return z


def region_means(series: np.ndarray, atlas: np.ndarray, labels: Mapping[int, str]
                 ) -> pd.DataFrame:
    """Mean time course of every labelled region: a time × region DataFrame.

    Parameters
    ----------
    series
        ``(x, y, z, t)`` array.
    atlas
        ``(x, y, z)`` integer labels on the same grid (0 = background).
    labels
        Label value → region name; regions absent from ``atlas`` are skipped.
    """
    lab = np.asarray(atlas).ravel()
    present = [v for v in labels if (lab == v).any()]
    if not present:
        return pd.DataFrame()
    means, _ = M.region_means(series.reshape(-1, series.shape[-1]).T, lab, ids=present)
    return pd.DataFrame({labels[v]: means[:, k] for k, v in enumerate(present)})


def plot_region_timecourses(synth: ImageLike | np.ndarray, measured: ImageLike | np.ndarray | None,
                            atlas: ImageLike | np.ndarray, out_path: PathLike, *,
                            labels: Mapping[int, str] | None = None,
                            regions: Sequence[str] | None = None,
                            max_regions: int = 6, tr: float | None = None) -> Path:
    """Region-mean time courses, synthesized vs measured, with their Pearson r.

    Parameters
    ----------
    synth, measured
        4-D series on one grid (image/path or array); ``measured`` may be ``None``.
    atlas
        3-D integer label image/array on that grid (resampled by nearest neighbour when an image
        on another grid is given with image series).
    out_path
        Output ``.svg``.
    labels
        Label value → name; default ``region <value>`` for every non-zero value.
    regions
        Names to draw; default the ``max_regions`` regions with the highest measured variance
        (or synthesized variance without a measurement).
    max_regions
        Regions drawn when ``regions`` is not given.
    tr
        Repetition time (x axis in seconds).

    Returns
    -------
    pathlib.Path
    """
    s, s_aff = _as_series(synth)
    m = _as_series(measured)[0] if measured is not None else None
    if isinstance(atlas, np.ndarray):
        a = np.asarray(atlas)
    else:
        aimg = load_img(atlas)
        if s_aff is not None and (aimg.shape[:3] != s.shape[:3]
                                  or not np.allclose(aimg.affine, s_aff, atol=1e-3)):
            from ...resources.atlases import resample_labels
            aimg = resample_labels(aimg, nib.Nifti1Image(s[..., 0], s_aff))
        a = np.asarray(aimg.dataobj).astype(int)
    if labels is None:
        labels = {int(v): f"region {int(v)}" for v in np.unique(a) if v != 0}
    ts = region_means(s, a, labels)
    tm = region_means(m, a, labels) if m is not None else None
    ref = tm if tm is not None else ts
    if regions is None:
        regions = list(ref.var().sort_values(ascending=False).index[:max_regions])
    regions = [r for r in regions if r in ts.columns]
    n = len(regions)
    fig, axes = plt.subplots(max(n, 1), 1, figsize=(10, 1.6 * max(n, 1) + 0.4), sharex=True,
                             squeeze=False)
    x = np.arange(s.shape[-1]) * tr if tr else np.arange(s.shape[-1])
    for i, name in enumerate(regions):
        ax = axes[i, 0]
        title = name
        if tm is not None:
            ax.plot(x, zscore(tm[name]), color="k", lw=1, label="measured")
            r = np.corrcoef(tm[name], ts[name])[0, 1] if ts[name].std() > 0 and tm[name].std() > 0 \
                else float("nan")
            title += f"  (r = {r:.2f})"
        ax.plot(x, zscore(ts[name]), color="C3", lw=1, label="synthesized")
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_ylabel("z", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=8, frameon=False, ncol=2, loc="upper right")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no atlas region overlaps the series", ha="center",
                        transform=axes[0, 0].transAxes)
    axes[-1, 0].set_xlabel("time (s)" if tr else "volume")
    fig.tight_layout()
    return save_svg(fig, out_path)
