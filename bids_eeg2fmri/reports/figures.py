"""Report figures: one plain function per figure, SVG output, written atomically.

Every function takes arrays, images or file paths plus an output path, draws with matplotlib's
Agg backend (nilearn's plotting for brain slices) and returns the path it wrote. Figures show the
data as stored in the derivatives; nothing is smoothed or idealised for display except where the
figure says so (carpet rows are detrended and z-scored, as in fMRIPrep).

Dense traces and images are rasterised inside the SVG (``rasterized=True``): an SVG with tens of
thousands of vector points per line is slow to open, while the axes and text stay vectors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (reports are rendered without a display)

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..bids.derivatives import atomic_path, sidecar_path  # noqa: E402

PathLike = str | os.PathLike
ImageLike = PathLike | nib.Nifti1Image
# Colours of the six motion parameters and the FD/DVARS traces (matplotlib tab10 order).
_COLOURS = plt.get_cmap("tab10").colors
_COLOURS_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive",
                  "cyan")
FD_THRESHOLD_MM = 0.5
RASTER_DPI = 110


# ----------------------------------------------------------------------------- helpers
def save_svg(fig: Figure, out_path: PathLike) -> Path:
    """Write ``fig`` as SVG to ``out_path`` atomically and close it.

    Parameters
    ----------
    fig
        The figure.
    out_path
        Destination ``.svg`` file; parent folders are created.

    Returns
    -------
    pathlib.Path
    """
    out = Path(out_path)
    try:
        with atomic_path(out) as tmp:
            # The temporary keeps the .svg tail, but say the format explicitly anyway.
            fig.savefig(tmp, format="svg", dpi=RASTER_DPI, bbox_inches="tight",
                        metadata={"Date": None})
    finally:
        plt.close(fig)
    return out


def _load_img(img: ImageLike) -> nib.Nifti1Image:
    return img if isinstance(img, nib.spatialimages.SpatialImage) else nib.load(os.fspath(img))


def _read_json(path: PathLike) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {}


def iter_volumes(path: PathLike) -> Iterator[np.ndarray]:
    """Yield the volumes of a 4-D NIfTI file one at a time (float32, scaling applied).

    The file is decompressed once, front to back, so memory stays at one volume even for
    a 2 mm MNI series of hundreds of volumes (about 1.3 GB if loaded whole), and time stays
    linear (slicing a gzip proxy volume by volume would re-decompress from the start each time).

    Parameters
    ----------
    path
        A 3-D or 4-D ``.nii``/``.nii.gz`` file.

    Yields
    ------
    numpy.ndarray
        ``(x, y, z)`` float32 arrays.
    """
    img = nib.load(os.fspath(path))
    proxy = img.dataobj
    shape = img.shape[:3]
    n_vol = img.shape[3] if len(img.shape) > 3 else 1
    dtype = img.header.get_data_dtype()
    slope = getattr(proxy, "slope", 1.0)
    inter = getattr(proxy, "inter", 0.0)
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    with nib.openers.ImageOpener(os.fspath(path), "rb") as fh:
        fh.seek(int(proxy.offset))
        for _ in range(n_vol):
            buf = fh.read(nbytes)
            if len(buf) != nbytes:
                raise OSError(f"{path}: file ends before its last volume")
            vol = np.frombuffer(buf, dtype=dtype).reshape(shape, order="F").astype(np.float32)
            if slope != 1.0 or inter != 0.0:
                vol = vol * np.float32(slope) + np.float32(inter)
            yield vol


def masked_series(path: PathLike, mask: np.ndarray) -> np.ndarray:
    """Voxels × time matrix (float32) of a 4-D file inside a boolean mask, read in one pass."""
    cols = [vol[mask] for vol in iter_volumes(path)]
    return np.stack(cols, axis=1) if cols else np.empty((int(mask.sum()), 0), np.float32)


def _as_frame(table: PathLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    return pd.read_csv(table, sep="\t", na_values=["n/a"])


# ----------------------------------------------------------------------------- registration
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

    from ..fmri.registration import load_field, template_to_boldref

    ref = _load_img(reference)
    src = _load_img(boldref)
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

    from ..resources.templates import load_template

    tpl = _load_img(template) if template is not None else load_template(2)
    warped = warp_to_template(boldref, xfm, tpl)
    mask_img = _load_img(mask)
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
    df = _as_frame(confounds)
    n = len(df)
    x = np.arange(n) * tr if tr else np.arange(n)
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    for i, c in enumerate(("trans_x", "trans_y", "trans_z")):
        if c in df:
            axes[0].plot(x, df[c], color=_COLOURS[i], lw=1, label=c)
    axes[0].set_ylabel("translation (mm)")
    for i, c in enumerate(("rot_x", "rot_y", "rot_z")):
        if c in df:
            # Degrees read more easily than radians at this scale; the TSV stays in rad.
            axes[1].plot(x, np.degrees(df[c]), color=_COLOURS[i + 3], lw=1, label=c)
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
        mimg = _load_img(mask)
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
        df = _as_frame(confounds)
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
        side.axhspan(lo, hi, color=_COLOURS[k % 10])
        if hi - lo < 0.08 * rows.shape[0]:
            continue  # too thin for a readable label; the legend in the title names it
        side.text(-0.2, (lo + hi) / 2, name, rotation=90, ha="right", va="center", fontsize=7,
                  transform=side.get_yaxis_transform())
    side.set_xlim(0, 1)
    side.set_ylim(rows.shape[0], 0)
    side.axis("off")
    groups = ", ".join(f"{name} ({_COLOURS_NAMES[k % 10]})"
                       for k, (name, _, _) in enumerate(bounds))
    fig.suptitle(f"{rows.shape[0]} of {n_vox} brain voxels, each detrended and z-scored "
                 f"(grey scale −2…2); rows grouped: {groups}", fontsize=8, x=0.02, ha="left")
    return save_svg(fig, out_path)


def _default_segments(shape: tuple[int, ...], affine: np.ndarray) -> dict[str, np.ndarray]:
    """Template grey/white-matter masks on the series' grid (nearest neighbour when it differs)."""
    from nilearn.image import resample_img

    from ..resources.templates import load_mask

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
    """Global signal of the raw run with the discarded leading volumes highlighted.

    Parameters
    ----------
    bold
        The raw BIDS BOLD file (its global signal is computed as the dummy-scan detector does:
        mean of the voxels brighter than the average voxel) or that 1-D global signal.
    n_dummy
        Volumes discarded at the start.
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
    from ..fmri.dummy import MAD_TO_SD, OUTLIER_Z, global_signal

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
                   label=f"{n_dummy} discarded")
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


# ----------------------------------------------------------------------------- EEG
def _read_eeg_window(path: PathLike, start: float, stop: float, picks: Sequence[str] | None
                     ) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """Samples of a few channels in ``[start, stop)`` s, reading only that part of the file."""
    import mne

    with mne.utils.use_log_level("ERROR"):
        raw = mne.io.read_raw(os.fspath(path), preload=False, verbose=False)
    sf = raw.info["sfreq"]
    names = [c for c in (picks or raw.ch_names) if c in raw.ch_names]
    a = max(0, int(round(start * sf)))
    b = min(raw.n_times, int(round(stop * sf)))
    data = raw.get_data(picks=names, start=a, stop=b) * 1e6  # V → µV
    return data, (np.arange(a, b) / sf), names, float(sf)


def plot_eeg_correction(raw_eeg: PathLike, preproc_eeg: PathLike, out_path: PathLike, *,
                        channels: Sequence[str] | None = None, n_channels: int = 4,
                        start: float | None = None, duration: float = 5.0,
                        volume_onsets: Sequence[float] | None = None) -> Path:
    """A few seconds of EEG before and after gradient/BCG correction, and their spectra.

    Only the shown window is read from either file. The raw panel is the recording as stored
    (original rate, unfiltered, so MR gradients dominate when present); the corrected panel is the
    ``desc-preproc_eeg.fif`` (gradient AAS, resampling, notch + band-pass, BCG PCA-OBS, average
    reference). The spectra (Welch over the window, mean of the shown channels) show what was
    removed: gradient harmonics at the slice and volume frequencies, line noise, out-of-band power.

    Parameters
    ----------
    raw_eeg
        The raw BIDS EEG file (any format ``mne.io.read_raw`` opens).
    preproc_eeg
        The run's ``desc-preproc_eeg.fif``.
    out_path
        Output ``.svg``.
    channels
        EEG channels to show; default ``n_channels`` EEG channels spread over the montage.
    n_channels
        How many, when ``channels`` is not given.
    start
        Window start (s from the first sample); default the onset of the middle volume.
    duration
        Window length (s).
    volume_onsets
        Volume onsets (s from the first sample), drawn as ticks; default the ``bold_volume``
        annotations of the preprocessed file.

    Returns
    -------
    pathlib.Path
    """
    import mne
    from scipy import signal as sps

    with mne.utils.use_log_level("ERROR"):
        clean = mne.io.read_raw(os.fspath(preproc_eeg), preload=False, verbose=False)
    eeg_idx = mne.pick_types(clean.info, eeg=True, exclude="bads")
    eeg_names = [clean.ch_names[i] for i in eeg_idx]
    ecg_names = [clean.ch_names[i] for i in mne.pick_types(clean.info, ecg=True, exclude=())]
    if channels is None:
        pick = np.unique(np.linspace(0, len(eeg_names) - 1, min(n_channels, len(eeg_names)))
                         .round().astype(int))
        channels = [eeg_names[i] for i in pick]
    if volume_onsets is None:
        from ..eeg.pipeline import volume_onsets_from_raw
        volume_onsets = volume_onsets_from_raw(clean)
    onsets = np.asarray(volume_onsets, dtype=float)
    if start is None:
        start = float(onsets[onsets.size // 2]) if onsets.size else \
            max(0.0, clean.times[-1] / 2 - duration / 2)
    stop = start + duration
    shown = list(channels) + ecg_names[:1]
    before, t_b, names_b, sf_b = _read_eeg_window(raw_eeg, start, stop, shown)
    after, t_a, names_a, sf_a = _read_eeg_window(preproc_eeg, start, stop, shown)

    fig = plt.figure(figsize=(11, 7))
    grid = fig.add_gridspec(2, 2, width_ratios=[3, 1.2], wspace=0.25, hspace=0.35)
    specs = []
    for row, (data, t, names, label) in enumerate(
            ((before, t_b, names_b, "raw (as recorded)"),
             (after, t_a, names_a, "corrected (desc-preproc)"))):
        ax = fig.add_subplot(grid[row, 0])
        eeg_rows = [i for i, n in enumerate(names) if n not in ecg_names]
        sub = data[eeg_rows] - data[eeg_rows].mean(axis=1, keepdims=True) if eeg_rows else data
        # One shared spacing per panel: traces keep their relative amplitudes.
        spacing = float(np.percentile(np.abs(sub), 99) * 2.2) if sub.size else 1.0
        spacing = spacing or 1.0
        for k, i in enumerate(eeg_rows):
            ax.plot(t, sub[k] - k * spacing, color="k", lw=0.5, rasterized=True)
        labels = [names[i] for i in eeg_rows]
        ticks = [-k * spacing for k in range(len(eeg_rows))]
        ecg_rows = [i for i, n in enumerate(names) if n in ecg_names]
        for i in ecg_rows:
            e = data[i] - data[i].mean()
            scale = float(np.percentile(np.abs(e), 99)) or 1.0
            pos = -len(eeg_rows) * spacing
            ax.plot(t, e / scale * spacing * 0.45 + pos, color="C3", lw=0.5, rasterized=True)
            labels.append(f"{names[i]} (scaled)")
            ticks.append(pos)
        ax.set_yticks(ticks, labels, fontsize=8)
        for o in onsets[(onsets >= start) & (onsets < stop)]:
            ax.axvline(o, color="C0", lw=0.6, alpha=0.6)
        ax.set_xlim(start, stop)
        ax.set_title(f"{label}: {sf_b if row == 0 else sf_a:g} Hz, trace spacing "
                     f"{spacing:.3g} µV; blue lines = volume onsets", fontsize=9, loc="left")
        if row == 1:
            ax.set_xlabel("time (s from first sample)")
        if eeg_rows:
            nper = int(min(sub.shape[1], (sf_b if row == 0 else sf_a)))
            f, p = sps.welch(sub, fs=sf_b if row == 0 else sf_a, nperseg=max(nper, 8))
            specs.append((label, f, p.mean(axis=0)))
    ax = fig.add_subplot(grid[:, 1])
    for k, (label, f, p) in enumerate(specs):
        keep = f > 0
        ax.loglog(f[keep], p[keep], color=("C3", "C0")[k], lw=1, label=label)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (µV²/Hz), mean of shown EEG channels")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("spectrum of the window", fontsize=9, loc="left")
    return save_svg(fig, out_path)


def plot_spectrogram(spectrogram: PathLike, out_path: PathLike, *,
                     bandpower: PathLike | pd.DataFrame | None = None,
                     bandpower_onsets: Sequence[float] | None = None) -> Path:
    """Channel-averaged per-TR spectrogram and band-power time courses with volume onsets.

    Parameters
    ----------
    spectrogram
        ``desc-stft_spectrogram.h5`` (or ``desc-synth_spectrogram.h5``): datasets
        ``spectrogram`` (volume, channel, frequency, frame; attrs ``scale``, ``units``),
        ``frequencies``, ``frame_times`` (s from the segment start), ``volume_onsets``.
    out_path
        Output ``.svg``.
    bandpower
        ``desc-bandpower_timeseries.tsv`` (path or DataFrame; columns ``<channel>_<band>``, µV²),
        averaged over channels per band; omitted when ``None``.
    bandpower_onsets
        Onset (s) of each band-power row; default ``VolumeOnsets`` of the TSV's JSON sidecar, else
        the spectrogram's volume onsets.

    Returns
    -------
    pathlib.Path
    """
    import h5py

    with h5py.File(os.fspath(spectrogram), "r") as h5:
        d = h5["spectrogram"]
        scale = d.attrs.get("scale", "log-power")
        units = d.attrs.get("units", "")
        if isinstance(scale, bytes):
            scale = scale.decode()
        if isinstance(units, bytes):
            units = units.decode()
        # Mean over channels volume by volume: the file can hold ~1 GB for long runs.
        spec = np.stack([d[v].mean(axis=0) for v in range(d.shape[0])]) if d.shape[0] else \
            np.empty((0,) + d.shape[2:])
        freqs = h5["frequencies"][()]
        ftimes = h5["frame_times"][()]
        onsets = h5["volume_onsets"][()]
        n_ch = d.shape[1]
    meta = _read_json(sidecar_path(spectrogram))
    tr = float(meta.get("RepetitionTime") or (np.median(np.diff(onsets)) if onsets.size > 1 else 1))
    context = int(meta.get("STFT", {}).get("ContextTRs", 0) or 0)
    # Absolute frame time = onset - context·TR + frame time; keep the frames inside the volume's
    # own TR so the columns tile the time axis (the context frames belong to earlier volumes).
    rel = ftimes - context * tr
    own = (rel >= 0) & (rel < tr)
    if not own.any():
        own = np.ones_like(rel, dtype=bool)
    times = (onsets[:, None] + rel[None, own]).ravel()
    cols = np.moveaxis(spec[..., own], 1, 2).reshape(-1, freqs.size).T  # freq × (vol·frame)
    order = np.argsort(times)
    times, cols = times[order], cols[:, order]

    n_panels = 2 if bandpower is not None else 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(10, 3.2 * n_panels), sharex=True, squeeze=False)
    ax = axes[0, 0]
    if times.size:
        edges_t = _edges(times)
        edges_f = _edges(freqs)
        lo, hi = np.nanpercentile(cols, [2, 98]) if np.isfinite(cols).any() else (0, 1)
        mesh = ax.pcolormesh(edges_t, edges_f, cols, shading="flat", cmap="magma", vmin=lo,
                             vmax=hi, rasterized=True)
        fig.colorbar(mesh, ax=ax, pad=0.01, label=units or scale)
        ax.plot(onsets, np.full(onsets.size, freqs.max()), "|", color="c", ms=6,
                label="volume onsets", clip_on=False)
        ax.set_xlim(edges_t[0], edges_t[-1])
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(f"STFT {scale}, mean of {n_ch} channels; {onsets.size} volumes (cyan ticks: "
                 "volume onsets)", fontsize=9, loc="left")
    if bandpower is not None:
        df = _as_frame(bandpower)
        if bandpower_onsets is None and not isinstance(bandpower, pd.DataFrame):
            bandpower_onsets = _read_json(sidecar_path(bandpower)).get("VolumeOnsets")
        x = np.asarray(bandpower_onsets if bandpower_onsets is not None else onsets[:len(df)],
                       dtype=float)
        ax = axes[1, 0]
        bands = sorted({c.rsplit("_", 1)[1] for c in df.columns if "_" in c},
                       key=lambda b: [c.rsplit("_", 1)[1] for c in df.columns].index(b))
        for k, band in enumerate(bands):
            cols_b = [c for c in df.columns if c.rsplit("_", 1)[-1] == band]
            y = df[cols_b].to_numpy(float).mean(axis=1)
            ax.semilogy(x[:y.size] + tr / 2, y[:x.size], ".-", color=_COLOURS[k % 10], lw=1,
                        ms=3, label=f"{band} ({len(cols_b)} ch)")
        for o in x:
            ax.axvline(o, color="0.85", lw=0.4, zorder=0)
        ax.set_ylabel("band power (µV², log)")
        ax.legend(fontsize=8, ncol=len(bands), frameon=False, loc="upper left")
        ax.set_title("band power per volume (mean over channels), plotted at mid-TR; grey lines: "
                     "volume onsets", fontsize=9, loc="left")
        # Match the spectrogram's width: its colour bar takes space the lower panel lacks.
        fig.colorbar(plt.cm.ScalarMappable(), ax=ax, pad=0.01).remove()
    axes[-1, 0].set_xlabel("time (s from first EEG sample)")
    return save_svg(fig, out_path)


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


# ----------------------------------------------------------------------------- synthesized BOLD
def _as_series(img: ImageLike | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(img, np.ndarray):
        return np.asarray(img, dtype=np.float32), None
    im = _load_img(img)
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
    flat = series.reshape(-1, series.shape[-1])
    lab = np.asarray(atlas).ravel()
    out = {}
    for value, name in labels.items():
        sel = lab == value
        if sel.any():
            out[name] = flat[sel].mean(axis=0)
    return pd.DataFrame(out)


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
        aimg = _load_img(atlas)
        if s_aff is not None and (aimg.shape[:3] != s.shape[:3]
                                  or not np.allclose(aimg.affine, s_aff, atol=1e-3)):
            from ..resources.atlases import resample_labels
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
            ax.plot(x, _z(tm[name]), color="k", lw=1, label="measured")
            r = np.corrcoef(tm[name], ts[name])[0, 1] if ts[name].std() > 0 and tm[name].std() > 0 \
                else float("nan")
            title += f"  (r = {r:.2f})"
        ax.plot(x, _z(ts[name]), color="C3", lw=1, label="synthesized")
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


def _z(y: pd.Series | np.ndarray) -> np.ndarray:
    v = np.asarray(y, dtype=float)
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else v - v.mean()


# ----------------------------------------------------------------------------- group figures
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
