"""Cheap integrity checks of NIfTI files before hours of processing start on them."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

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
