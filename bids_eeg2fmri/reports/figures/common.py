"""What every report figure shares: the SVG writer, colours, constants and readers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (reports are rendered without a display)

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ...bids.derivatives import atomic_path  # noqa: E402
from ..page import FD_THRESHOLD_MM  # noqa: E402,F401  (re-exported to the figure modules)

PathLike = str | os.PathLike
ImageLike = PathLike | nib.Nifti1Image
# Colours of the six motion parameters and the FD/DVARS traces (matplotlib tab10 order).
COLOURS = plt.get_cmap("tab10").colors
COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive",
                  "cyan")
RASTER_DPI = 110


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


def load_img(img: ImageLike) -> nib.Nifti1Image:
    """``img`` itself when it is an image, else the image at that path."""
    return img if isinstance(img, nib.spatialimages.SpatialImage) else nib.load(os.fspath(img))


def read_json(path: PathLike) -> dict[str, Any]:
    """The JSON at ``path``; an empty dict when the file does not exist."""
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


def as_frame(table: PathLike | pd.DataFrame) -> pd.DataFrame:
    """``table`` itself, or the TSV at that path (``n/a`` read as missing)."""
    if isinstance(table, pd.DataFrame):
        return table
    return pd.read_csv(table, sep="\t", na_values=["n/a"])


def zscore(y: pd.Series | np.ndarray) -> np.ndarray:
    """``y`` centred and scaled to unit standard deviation (only centred when constant)."""
    v = np.asarray(y, dtype=float)
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else v - v.mean()
