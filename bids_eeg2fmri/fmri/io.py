"""Reading a BOLD run for preprocessing, with the checks that turn bad input into exit 65.

Header and sidecar checks (4-D, truncation, RepetitionTime, SliceTiming) live in
:func:`bids_eeg2fmri.bids.layout.read_bold_run`; this module adds the checks that need the voxel
values (NaN/Inf) or the dummy-scan count (enough volumes left).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..bids.layout import BoldRun, read_bold_run
from ..bids.niftiio import NiftiStreamWriter
from ..errors import DataError

MIN_VOLUMES = 5


class _MetadataLayout:
    """The two methods of a BIDSLayout that :func:`read_bold_run` uses, answered from a dict.

    The workflow receives the run's (possibly inherited) metadata from the caller; wrapping it this
    way lets the one shared reader validate it instead of a second copy of its checks.
    """

    def __init__(self, metadata: dict[str, Any]) -> None:
        self._metadata = dict(metadata)

    def get_metadata(self, path: str) -> dict[str, Any]:
        return dict(self._metadata)

    def get_file(self, path: str) -> "_MetadataLayout":
        return self

    def get_entities(self) -> dict[str, Any]:
        return {}


def read_run(path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> BoldRun:
    """Validate a BOLD file and its metadata and return them as a :class:`BoldRun`.

    Parameters
    ----------
    path
        The 4-D NIfTI series.
    metadata
        The run's BIDS metadata (with inheritance resolved). ``None`` reads the file's own sidecar.

    Raises
    ------
    DataError
        For a file that is not a complete 4-D image, or a missing/non-positive RepetitionTime or a
        SliceTiming of the wrong length or outside ``[0, TR)``.
    """
    layout = None if metadata is None else _MetadataLayout(metadata)
    return read_bold_run(path, layout)


def load_bold(path: str | os.PathLike) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a BOLD series as float32 and refuse non-finite voxels.

    Parameters
    ----------
    path
        The 4-D NIfTI series (already checked by :func:`read_run`).

    Returns
    -------
    image, data
        The nibabel image (for its header and affine) and its float32 ``(x, y, z, t)`` array.

    Raises
    ------
    DataError
        When the image is not 4-D or any voxel is NaN or infinite.
    """
    img = nib.load(os.fspath(path))
    if img.ndim != 4:
        raise DataError(f"BOLD must be a 4-D series, image shape is {img.shape}", path)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        first = np.argwhere(~finite)[0]
        raise DataError(f"BOLD contains {bad} NaN/Inf voxel values (first at voxel "
                        f"{tuple(int(v) for v in first[:3])}, volume {int(first[3])})", path)
    return img, data


def check_volume_count(n_volumes: int, n_dummy: int, path: str | os.PathLike,
                       minimum: int = MIN_VOLUMES) -> None:
    """Raise :class:`DataError` unless at least ``minimum`` steady-state volumes follow the
    ``n_dummy`` non-steady ones (they are kept, but nothing can be estimated from them)."""
    if n_volumes - n_dummy < minimum:
        raise DataError(f"only {n_volumes - n_dummy} steady-state volume(s) after {n_dummy} "
                        f"non-steady-state (dummy) scan(s) of {n_volumes}; at least {minimum} are "
                        "needed", Path(path))


def series_header(shape: tuple[int, ...], affine: np.ndarray, repetition_time: float | None,
                  dtype: type = np.float32, code: int = 4) -> nib.Nifti1Header:
    """A NIfTI-1 header for a float series on a grid; ``code`` 4 = MNI152, 1 = scanner space."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    zooms = list(np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))
    if len(shape) == 4:
        zooms.append(float(repetition_time or 1.0))
    hdr.set_zooms(zooms)
    hdr.set_sform(affine, code)
    hdr.set_qform(affine, code)
    hdr.set_xyzt_units("mm", "sec")
    return hdr


def write_masked_series(path: str | os.PathLike, values: np.ndarray, mask: np.ndarray,
                        affine: np.ndarray, repetition_time: float, *, code: int = 4,
                        compresslevel: int = 1) -> None:
    """Write ``(voxels, t)`` values inside ``mask`` as a 4-D float32 NIfTI, one volume at a time.

    Streamed through :class:`~bids_eeg2fmri.bids.niftiio.NiftiStreamWriter` (atomic, gzip level 1
    by default): the full 4-D array (1.3 GB for 300 volumes at 2 mm) never exists in memory.
    """
    hdr = series_header(tuple(mask.shape) + (values.shape[1],), affine, repetition_time,
                        code=code)
    vol = np.zeros(mask.shape, dtype=np.float32)
    with NiftiStreamWriter(path, hdr, compresslevel=compresslevel) as writer:
        for i in range(values.shape[1]):
            vol[mask] = values[:, i]
            writer.write(vol)


def write_masked_series_async(path: str | os.PathLike, values: np.ndarray, mask: np.ndarray,
                              affine: np.ndarray, repetition_time: float, **kwargs: Any
                              ) -> Future:
    """:func:`write_masked_series` in a background thread; ``.result()`` waits (and re-raises).

    The caller must not modify ``values`` until then. zlib releases the GIL while it compresses,
    so the caller's own computation runs alongside on another core.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="nifti-writer")
    future = pool.submit(write_masked_series, path, values, mask, affine, repetition_time,
                         **kwargs)
    pool.shutdown(wait=False)
    return future
