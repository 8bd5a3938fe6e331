"""NIfTI files: cheap integrity checks before processing starts, and a streaming atomic writer."""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .derivatives import atomic_path

if TYPE_CHECKING:
    import nibabel as nib

_CHUNK = 1 << 22


@dataclass(frozen=True)
class NiftiInfo:
    """Header facts of a checked NIfTI file."""

    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    expected_bytes: int


def check_nifti(path: str | os.PathLike) -> NiftiInfo:
    """Verify that a NIfTI file has a readable header and all of its voxel data.

    A truncated ``.nii`` is caught by its size. For ``.nii.gz`` the gzip trailer's length field is
    compared first (instant); only when it disagrees is the stream decompressed to count the bytes,
    which also catches a trailer that is missing because the file was cut short.

    Parameters
    ----------
    path
        The ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    NiftiInfo

    Raises
    ------
    DataError
        Naming the file, when it is missing, not NIfTI, or shorter than its header says.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist", path)
    try:
        img = nib.load(os.fspath(path))
        header = img.header
        shape = tuple(int(s) for s in img.shape)
        zooms = tuple(float(z) for z in header.get_zooms())
    except Exception as exc:  # nibabel raises many types for damaged files
        raise DataError(f"not a readable NIfTI image ({type(exc).__name__}: {exc})", path) from None
    offset = int(header.get("vox_offset", 352)) if hasattr(header, "get") else 352
    itemsize = header.get_data_dtype().itemsize
    n_vox = 1
    for s in shape:
        n_vox *= s
    expected = offset + n_vox * itemsize
    if path.name.endswith(".gz"):
        actual = _gzip_length(path, expected)
    else:
        actual = path.stat().st_size
    if actual < expected:
        raise DataError(f"NIfTI file is truncated: {actual} of {expected} bytes "
                        f"(header says shape {shape}, {header.get_data_dtype()})", path)
    return NiftiInfo(shape, zooms, expected)


def _gzip_length(path: Path, expected: int) -> int:
    """Uncompressed length of a gzip file, trusting the trailer when it matches ``expected``."""
    size = path.stat().st_size
    if size >= 18:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", fh.read(4))[0]
        if isize == expected % (1 << 32):
            return expected
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        return total
    return total


class NiftiStreamWriter:
    """Write a 4-D NIfTI-1 file volume by volume, atomically.

    NIfTI stores volumes one after the other, so the header is written first and each volume is
    appended (through gzip for ``.nii.gz``) as soon as the caller has it: the full 4-D array never
    exists in memory. Everything goes to a hidden temporary beside ``path``
    (:func:`~bids_eeg2fmri.bids.derivatives.atomic_path`) that is renamed onto ``path`` only when
    every volume the header announces was written; on an error, or with volumes missing, the
    temporary is removed and ``path`` is left as it was. Use as a context manager.

    Parameters
    ----------
    path
        Destination ``.nii`` or ``.nii.gz``.
    header
        A NIfTI-1 header with the full 4-D shape and the data dtype; ``vox_offset`` is set to 352.
    compresslevel
        gzip level; level 1 is several times faster than the default and the zeros outside a brain
        mask still compress almost entirely.
    """

    def __init__(self, path: str | os.PathLike, header: nib.Nifti1Header, *,
                 compresslevel: int = 1) -> None:
        self.path = Path(path)
        self.header = header.copy()
        self.header["vox_offset"] = 352
        shape = tuple(int(s) for s in self.header.get_data_shape())
        if len(shape) != 4:
            raise ValueError(f"NiftiStreamWriter writes 4-D series, header shape is {shape}")
        self.volume_shape = shape[:3]
        self.n_volumes = shape[3]
        self.dtype = self.header.get_data_dtype()
        self.written = 0
        self._compresslevel = compresslevel
        self._stack = contextlib.ExitStack()
        self._fh: Any = None

    def __enter__(self) -> NiftiStreamWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        raw = self._stack.enter_context(open(tmp, "wb"))
        # No file name and mtime 0 in the gzip header: the bytes then depend on the data alone
        # (the name would be the random temporary's), so reruns are byte-identical.
        self._fh = (self._stack.enter_context(gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=self._compresslevel, mtime=0))
            if self.path.name.endswith(".gz") else raw)
        self.header.write_to(self._fh)  # 348 header bytes + the 4-byte extension flag: data at 352
        return self

    def write(self, volumes: np.ndarray) -> None:
        """Append one volume ``(x, y, z)`` or a block of volumes ``(x, y, z, b)``."""
        block = np.asarray(volumes)
        if block.ndim == 3:
            block = block[..., None]
        if block.shape[:3] != self.volume_shape:
            raise ValueError(f"volume shape {block.shape[:3]} differs from the header's "
                             f"{self.volume_shape}")
        if self.written + block.shape[3] > self.n_volumes:
            raise ValueError(f"{self.path.name}: more than the {self.n_volumes} volumes "
                             "of the header")
        self.written += block.shape[3]
        block = block.astype(self.dtype, copy=False)
        for i in range(block.shape[3]):
            self._fh.write(block[..., i].tobytes(order="F"))

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None and self.written != self.n_volumes:
            exc = ValueError(f"{self.path.name}: {self.written} of the {self.n_volumes} volumes "
                             "announced by the header were written")
            self._stack.__exit__(type(exc), exc, None)
            raise exc
        self._stack.__exit__(exc_type, exc, tb)
