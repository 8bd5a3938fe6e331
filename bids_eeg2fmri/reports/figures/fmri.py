"""Participant fMRI figures: registration, motion, carpet plot, dummy scans."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from .common import (as_frame, COLOURS, COLOUR_NAMES, FD_THRESHOLD_MM, ImageLike, iter_volumes,
                     load_img, PathLike, save_svg)


def warp_to_template(boldref: ImageLike, xfm: PathLike, reference: ImageLike) -> nib.Nifti1Image:
    """Pull the boldref into template space through the run's displacement field.

    Parameters
    ----------
    boldref
        The boldref (original EPI grid).
    xfm
        ``from-boldref_to-MNI152NLin2009aSym_mode-image_xfm.nii.gz``: ANTs displacement field on
        the template grid, LPS vectors, template point ``p`` ↦ boldref point ``p + d(p)``.
    reference
        The grid to resample onto (e.g. the 2 mm template).

    Returns
    -------
    nibabel.Nifti1Image
        The boldref on ``reference``'s grid (trilinear, 0 outside the EPI field of view).
    """
    from scipy import ndimage

    from ...fmri.registration import load_field, template_to_boldref

    ref = load_img(reference)
    src = load_img(boldref)
    field, field_affine = load_field(xfm)
    ijk = np.indices(ref.shape[:3]).reshape(3, -1).T
    pts = (ref.affine @ np.column_stack([ijk, np.ones(len(ijk))]).T)[:3].T
    where = template_to_boldref(pts, field, field_affine)
    vox = (np.linalg.inv(src.affine) @ np.column_stack([where, np.ones(len(where))]).T)[:3]
    data = np.asarray(src.dataobj, dtype=np.float32)
    if data.ndim > 3:
        data = data[..., 0]
    vals = ndimage.map_coordinates(data, vox, order=1, mode="constant", cval=0.0)
    return nib.Nifti1Image(vals.reshape(ref.shape[:3]).astype(np.float32), ref.affine)


def plot_registration(boldref: ImageLike, xfm: PathLike, mask: ImageLike, out_path: PathLike, *,
                      template: ImageLike | None = None, n_cuts: int = 6) -> Path:
    """Boldref after registration to MNI, and the template, both with the brain-mask contour.

    The top rows show the boldref resampled into template space through the run's transform, the
    bottom rows the MNI152NLin2009aSym template; the red line, drawn identically on both, is the
    run's template-space brain mask. Good registration: the contour follows the brain's outline
    on both.

    Parameters
    ----------
    boldref
        The run's ``space-boldref_boldref.nii.gz``.
    xfm
        The ``from-boldref_to-MNI152NLin2009aSym_mode-image_xfm.nii.gz`` displacement field.
    mask
        The run's ``desc-brain_mask.nii.gz`` (template space, any resolution).
    out_path
        Output ``.svg``.
    template
        Template image; default the 2 mm MNI152NLin2009aSym of ``resources.templates``.
    n_cuts
        Slices per view.

    Returns
    -------
    pathlib.Path
    """
    from nilearn import plotting

    from ...resources.templates import load_template

    tpl = load_img(template) if template is not None else load_template(2)
    warped = warp_to_template(boldref, xfm, tpl)
    mask_img = load_img(mask)
    fig, axes = plt.subplots(6, 1, figsize=(12, 11))
    views = [("x", "sagittal"), ("y", "coronal"), ("z", "axial")]
    # Cuts spread over the mask's extent so every panel shows brain.
    mdata = np.asarray(mask_img.dataobj) > 0
    rows = [(warped, "boldref in MNI152NLin2009aSym (after registration)"),
            (tpl, "MNI152NLin2009aSym template")]
    k = 0
    for img, title in rows:
        vmax = float(np.percentile(np.asarray(img.dataobj)[np.asarray(img.dataobj) > 0], 99.5)) \
            if np.any(np.asarray(img.dataobj) > 0) else 1.0
        for axis, view in views:
            cuts = _cuts_in_mask(mdata, mask_img.affine, axis, n_cuts)
            disp = plotting.plot_anat(img, display_mode=axis, cut_coords=cuts, axes=axes[k],
                                      figure=fig, vmin=0, vmax=vmax, annotate=False,
                                      black_bg=True, draw_cross=False, dim=0)
            disp.add_contours(mask_img, levels=[0.5], colors="r", linewidths=1.0)
            axes[k].set_title(f"{title} — {view}", fontsize=9, color="k", loc="left")
            k += 1
    return save_svg(fig, out_path)


def _cuts_in_mask(mask: np.ndarray, affine: np.ndarray, axis: str, n: int) -> list[float]:
    """``n`` world coordinates along ``axis`` spread over the mask's inner extent."""
    ax = "xyz".index(axis)
    idx = np.flatnonzero(mask.any(axis=tuple(i for i in range(3) if i != ax)))
    if idx.size == 0:
        idx = np.arange(mask.shape[ax])
    lo, hi = idx.min(), idx.max()
    pos = np.linspace(lo, hi, n + 2)[1:-1]
    vox = np.zeros((n, 4))
    vox[:, ax] = pos
    vox[:, 3] = 1
    return [float(v) for v in (affine @ vox.T)[ax]]


# ----------------------------------------------------------------------------- motion
def plot_motion(confounds: PathLike | pd.DataFrame, out_path: PathLike, *,
                fd_threshold: float = FD_THRESHOLD_MM, tr: float | None = None) -> Path:
    """Head-motion parameters and framewise displacement of one run.

    Parameters
    ----------
    confounds
        The ``desc-confounds_timeseries.tsv`` (path or DataFrame) with ``trans_x/y/z`` (mm),
        ``rot_x/y/z`` (rad) and ``framewise_displacement`` (mm; first row n/a).
    out_path
        Output ``.svg``.
    fd_threshold
        Dashed line and count of volumes above it (mm).
    tr
        Repetition time; the x axis is in seconds when given, volumes otherwise.

    Returns
    -------
    pathlib.Path
    """
    df = as_frame(confounds)
    n = len(df)
    x = np.arange(n) * tr if tr else np.arange(n)
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    for i, c in enumerate(("trans_x", "trans_y", "trans_z")):
        if c in df:
            axes[0].plot(x, df[c], color=COLOURS[i], lw=1, label=c)
    axes[0].set_ylabel("translation (mm)")
    for i, c in enumerate(("rot_x", "rot_y", "rot_z")):
        if c in df:
            # Degrees read more easily than radians at this scale; the TSV stays in rad.
            axes[1].plot(x, np.degrees(df[c]), color=COLOURS[i + 3], lw=1, label=c)
    axes[1].set_ylabel("rotation (deg)")
    for ax in axes[:2]:
        ax.legend(loc="upper left", ncol=3, fontsize=8, frameon=False)
        ax.axhline(0, color="0.7", lw=0.5)
    fd = df.get("framewise_displacement", pd.Series(np.full(n, np.nan))).to_numpy(float)
    axes[2].plot(x, fd, color="k", lw=1)
    axes[2].axhline(fd_threshold, color="r", ls="--", lw=0.8)
    above = int(np.nansum(fd > fd_threshold))
    mean_fd = float(np.nanmean(fd)) if np.isfinite(fd).any() else float("nan")
    axes[2].set_ylabel("FD (mm)")
    max_fd = float(np.nanmax(fd)) if np.isfinite(fd).any() else float("nan")
    axes[2].set_title(f"framewise displacement: mean {mean_fd:.3f} mm, max {max_fd:.3f} mm, "
                      f"{above} of {n} volumes above {fd_threshold:g} mm (dashed)",
                      fontsize=9, loc="left")
    axes[2].set_xlabel("time (s)" if tr else "volume")
    fig.tight_layout()
    return save_svg(fig, out_path)


# ----------------------------------------------------------------------------- carpet
def carpet_rows(series: np.ndarray) -> np.ndarray:
    """Carpet-plot rows: each voxel's series with its linear trend removed, z-scored.

    The figure is ours rather than :func:`nilearn.plotting.plot_carpet`, which draws only the
    voxel matrix (no FD/DVARS/global-signal traces, no EEG coverage segments). The rows equal
    ``nilearn.signal.clean(detrend=True, standardize="zscore_sample")`` times ``sqrt((n-1)/n)``
    (1.8e-15 measured; we z-score with the population SD, as fMRIPrep's carpet does).

    Constant voxels become rows of zeros (no division by zero).
    """
    x = np.asarray(series, dtype=np.float64)
    t = np.arange(x.shape[1], dtype=np.float64)
    t -= t.mean()
    denom = float((t ** 2).sum()) or 1.0
    x = x - x.mean(axis=1, keepdims=True)
    x = x - np.outer(x @ t / denom, t)
    sd = x.std(axis=1, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def plot_carpet(bold: PathLike | np.ndarray, mask: ImageLike | np.ndarray, out_path: PathLike, *,
                confounds: PathLike | pd.DataFrame | None = None, tr: float | None = None,
                segments: Mapping[str, np.ndarray] | None = None, max_rows: int = 1500,
                seed: int = 0) -> Path:
    """fMRIPrep-style carpet plot: voxels × time, with FD, DVARS and global-signal traces above.

    Parameters
    ----------
    bold
        The 4-D preprocessed series (path, read in one streaming pass) or a voxels × time array
        (then ``mask`` only has to give the row count and ``segments`` index the rows).
    mask
        Brain mask image/path on the series' grid, or a boolean 3-D array.
    out_path
        Output ``.svg``.
    confounds
        Confounds TSV/DataFrame for the FD and std DVARS traces (omitted when ``None``).
    tr
        Repetition time (x axis in seconds).
    segments
        Row groups to draw in order with a colour bar, name → boolean 3-D mask on the grid (e.g.
        grey matter, white matter); voxels in none of them go into a last "other" group. Default:
        the MNI152 grey- and white-matter masks when the grid is the 2 mm template grid.
    max_rows
        At most this many voxels are drawn (a random subset, the same fraction of each group).
    seed
        Seed of that subset.

    Returns
    -------
    pathlib.Path
    """
    if isinstance(mask, np.ndarray):
        mdata, maffine = mask.astype(bool), None
    else:
        mimg = load_img(mask)
        mdata, maffine = np.asarray(mimg.dataobj) > 0, mimg.affine
    if segments is None and maffine is not None:
        segments = _default_segments(mdata.shape, maffine)
    n_vox = int(bold.shape[0]) if isinstance(bold, np.ndarray) and bold.ndim == 2 \
        else int(mdata.sum())
    order, bounds = _carpet_order(mdata, segments or {}, n_vox, max_rows, seed)
    if isinstance(bold, np.ndarray):
        series = np.asarray(bold if bold.ndim == 2 else bold[mdata], dtype=np.float32)
        picked, gs_signal = series[order], series.mean(axis=0)
    else:
        # Stream: keep only the drawn rows and the global mean, never the whole masked series.
        cols, gs = [], []
        for vol in iter_volumes(bold):
            inside = vol[mdata]
            gs.append(float(inside.mean()) if inside.size else 0.0)
            cols.append(inside[order])
        picked = np.stack(cols, axis=1) if cols else np.empty((order.size, 0), np.float32)
        gs_signal = np.asarray(gs)
    rows = carpet_rows(picked)
    n_t = picked.shape[1]

    traces: list[tuple[str, np.ndarray, str]] = []
    if confounds is not None:
        df = as_frame(confounds)
        if "framewise_displacement" in df:
            traces.append(("FD (mm)", df["framewise_displacement"].to_numpy(float), "C1"))
        if "std_dvars" in df:
            traces.append(("std DVARS", df["std_dvars"].to_numpy(float), "C0"))
        elif "dvars" in df:
            traces.append(("DVARS", df["dvars"].to_numpy(float), "C0"))
    traces.append(("global signal", gs_signal, "C2"))
    n_tr = len(traces)
    fig = plt.figure(figsize=(10, 2 + 0.7 * n_tr + 3.5))
    grid = fig.add_gridspec(n_tr + 1, 2, height_ratios=[0.7] * n_tr + [5], width_ratios=[1, 40],
                            hspace=0.08, wspace=0.01)
    x = np.arange(n_t) * tr if tr else np.arange(n_t)
    last_ax = None
    for i, (name, y, colour) in enumerate(traces):
        ax = fig.add_subplot(grid[i, 1])
        ax.plot(x[:len(y)], y[:n_t], color=colour, lw=1)
        half = 0.5 * (x[1] - x[0] if n_t > 1 else 1)
        ax.set_xlim(x[0] - half, x[-1] + half)
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        for s in ("top", "right"):
            ax.spines[s].set_visible(False)
        last_ax = ax
    ax = fig.add_subplot(grid[n_tr, 1], sharex=last_ax)
    step = x[1] - x[0] if n_t > 1 else 1.0
    ax.imshow(rows, aspect="auto", cmap="gray", vmin=-2, vmax=2, interpolation="nearest",
              extent=(x[0] - step / 2, x[-1] + step / 2, rows.shape[0], 0), rasterized=True)
    ax.set_yticks([])
    ax.set_xlabel("time (s)" if tr else "volume")
    ax.set_ylabel("")
    side = fig.add_subplot(grid[n_tr, 0], sharey=ax)
    for k, (name, lo, hi) in enumerate(bounds):
        side.axhspan(lo, hi, color=COLOURS[k % 10])
        if hi - lo < 0.08 * rows.shape[0]:
            continue  # too thin for a readable label; the legend in the title names it
        side.text(-0.2, (lo + hi) / 2, name, rotation=90, ha="right", va="center", fontsize=7,
                  transform=side.get_yaxis_transform())
    side.set_xlim(0, 1)
    side.set_ylim(rows.shape[0], 0)
    side.axis("off")
    groups = ", ".join(f"{name} ({COLOUR_NAMES[k % 10]})"
                       for k, (name, _, _) in enumerate(bounds))
    fig.suptitle(f"{rows.shape[0]} of {n_vox} brain voxels, each detrended and z-scored "
                 f"(grey scale −2…2); rows grouped: {groups}", fontsize=8, x=0.02, ha="left")
    return save_svg(fig, out_path)


def _default_segments(shape: tuple[int, ...], affine: np.ndarray) -> dict[str, np.ndarray]:
    """Template grey/white-matter masks on the series' grid (nearest neighbour when it differs)."""
    from nilearn.image import resample_img

    from ...resources.templates import load_mask

    out = {}
    for kind, name in (("gm", "grey matter"), ("wm", "white matter")):
        m = load_mask(kind, 2)
        if m.shape[:3] != tuple(shape[:3]) or not np.allclose(m.affine, affine, atol=1e-3):
            m = resample_img(m, target_affine=affine, target_shape=tuple(shape[:3]),
                             interpolation="nearest", force_resample=True, copy_header=True)
        out[name] = np.asarray(m.dataobj) > 0
    # GM and WM masks overlap at their borders; give each voxel to GM first.
    out["white matter"] = out["white matter"] & ~out["grey matter"]
    return out


def _carpet_order(mask: np.ndarray, segments: Mapping[str, np.ndarray], n_rows: int,
                  max_rows: int, seed: int) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Row order (indices into the masked voxels) and the (name, start, stop) of each group."""
    rng = np.random.default_rng(seed)
    keep = min(n_rows, max_rows) / max(n_rows, 1)
    if segments and mask.sum() == n_rows:
        groups = []
        taken = np.zeros(n_rows, bool)
        for name, seg in segments.items():
            sel = seg[mask] & ~taken
            taken |= sel
            groups.append((name, np.flatnonzero(sel)))
        groups.append(("other", np.flatnonzero(~taken)))
    else:
        groups = [("brain", np.arange(n_rows))]
    order, bounds, start = [], [], 0
    for name, idx in groups:
        if idx.size == 0:
            continue
        take = max(1, int(round(idx.size * keep)))
        pick = np.sort(rng.choice(idx, size=take, replace=False)) if take < idx.size else idx
        order.append(pick)
        bounds.append((name, start, start + pick.size))
        start += pick.size
    return (np.concatenate(order) if order else np.arange(0)), bounds


# ----------------------------------------------------------------------------- dummy scans
def plot_dummy_scans(bold: PathLike | np.ndarray, n_dummy: int, out_path: PathLike, *,
                     tr: float | None = None, source: str = "") -> Path:
    """Global signal of the raw run with the flagged (non-steady-state) leading volumes highlighted.

    Parameters
    ----------
    bold
        The raw BIDS BOLD file (its global signal is computed as the dummy-scan detector does:
        mean of the voxels brighter than the average voxel) or that 1-D global signal.
    n_dummy
        Non-steady-state volumes flagged at the start.
    out_path
        Output ``.svg``.
    tr
        Repetition time (x axis in seconds).
    source
        How the count was found ("detected …" / "user …"), shown in the title.

    Returns
    -------
    pathlib.Path
    """
    from ...fmri.dummy import MAD_TO_SD, OUTLIER_Z, global_signal

    if isinstance(bold, np.ndarray):
        gs = np.asarray(bold, dtype=np.float64)
    else:
        # The detector's own global signal, so the figure shows exactly what it thresholded.
        gs = global_signal(np.stack(list(iter_volumes(bold)), axis=-1))
    med = np.median(gs)
    mad = np.median(np.abs(gs - med))
    x = np.arange(gs.size) * tr if tr else np.arange(gs.size)
    fig, ax = plt.subplots(figsize=(10, 2.8))
    ax.plot(x, gs, "k.-", lw=0.8, ms=3)
    if n_dummy > 0:
        step = x[1] - x[0] if gs.size > 1 else 1
        ax.axvspan(x[0] - step / 2, x[n_dummy - 1] + step / 2, color="r", alpha=0.2,
                   label=f"{n_dummy} flagged non-steady")
    if mad > 0:
        # The detector's threshold: robust z = 0.6745 (x - median) / MAD = 3.5.
        ax.axhline(med + OUTLIER_Z * mad / MAD_TO_SD, color="r", ls="--", lw=0.8,
                   label=f"robust z = {OUTLIER_Z:g}")
    ax.axhline(med, color="0.5", lw=0.6, label="median")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_xlabel("time (s)" if tr else "volume")
    ax.set_ylabel("global signal")
    ax.set_title(f"dummy scans: {n_dummy}" + (f" ({source})" if source else ""), fontsize=9,
                 loc="left")
    fig.tight_layout()
    return save_svg(fig, out_path)
