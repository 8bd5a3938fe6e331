"""Small bridges between numpy/nibabel (RAS world coordinates) and antspyx (LPS).

ANTs/ITK works in LPS physical coordinates; NIfTI affines map voxels to RAS. ``FLIP`` converts
between the two (it is its own inverse). Every matrix this package keeps in memory or passes
between modules is a 4×4 RAS world-to-world matrix; the conversion to ANTs happens only here.

antspyx writes its transforms to files named after an output prefix and, without one, invents a
name in the system temp dir that nobody deletes. Every call here therefore runs inside a
:func:`scratch_dir`, a private folder removed on exit, so nothing is left behind in ``$TMPDIR``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
SCRATCH_PREFIX = "bids_eeg2fmri-ants-"


@contextlib.contextmanager
def scratch_dir(base: str | os.PathLike | None = None) -> Iterator[Path]:
    """A private temporary folder for ANTs outputs, deleted with its content on exit.

    Parameters
    ----------
    base
        Parent folder (e.g. the nipype node's folder); the system temp dir when ``None``.
    """
    path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=None if base is None else os.fspath(base)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def affine_to_ants_geometry(affine: np.ndarray, tol: float = 1e-3
                            ) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
    """Origin, spacing and direction of an ANTs image with the given NIfTI (RAS) affine.

    Raises
    ------
    ValueError
        If the affine has shear (ITK images cannot represent it).
    """
    lps = FLIP @ np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > tol:
        raise ValueError("the image affine has shear; ANTs images need orthogonal axes")
    return tuple(lps[:3, 3]), tuple(spacing), direction


def to_ants(data: np.ndarray, affine: np.ndarray):
    """Wrap a 3-D array with a NIfTI affine as a float32 ``ants.ANTsImage``."""
    import ants

    origin, spacing, direction = affine_to_ants_geometry(affine)
    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32), origin=origin,
                           spacing=spacing, direction=direction)


def read_ants_linear(path: str | os.PathLike) -> np.ndarray:
    """Read an ANTs/ITK linear transform file as a 4×4 RAS matrix.

    The ITK transform maps points of the *fixed* image to the *moving* image:
    ``y = A (x - c) + c + t`` in LPS, with ``A``/``t`` its parameters and ``c`` its fixed
    parameters (centre).
    """
    import ants

    tx = ants.read_transform(os.fspath(path))
    params = np.asarray(tx.parameters, dtype=float)
    center = np.asarray(tx.fixed_parameters, dtype=float)
    mat = params[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = mat
    lps[:3, 3] = params[9:12] + center - mat @ center
    return FLIP @ lps @ FLIP


def itk_text(matrices_ras: Sequence[np.ndarray] | np.ndarray) -> str:
    """ITK text transform file (``#Insight Transform File V1.0``) holding one affine per matrix.

    Each RAS matrix (fixed point → moving point) is written as an LPS ``AffineTransform_double_3_3``
    with zero centre, the form ``antsApplyTransforms`` and fMRIPrep's ``desc-hmc_xfm.txt`` use.
    """
    lines = ["#Insight Transform File V1.0"]
    for i, mat in enumerate(np.asarray(matrices_ras, dtype=float)):
        lps = FLIP @ mat @ FLIP
        params = list(lps[:3, :3].ravel()) + list(lps[:3, 3])
        lines += [f"#Transform {i}", "Transform: AffineTransform_double_3_3",
                  "Parameters: " + " ".join(f"{v:.10g}" for v in params),
                  "FixedParameters: 0 0 0"]
    return "\n".join(lines) + "\n"


def parse_itk_text(text: str) -> np.ndarray:
    """Read the matrices of :func:`itk_text` back as an ``(n, 4, 4)`` RAS array."""
    mats = []
    params: list[float] | None = None
    for line in text.splitlines():
        if line.startswith("Parameters:"):
            params = [float(v) for v in line.split(":", 1)[1].split()]
        elif line.startswith("FixedParameters:") and params is not None:
            center = np.array([float(v) for v in line.split(":", 1)[1].split()])
            a = np.array(params[:9]).reshape(3, 3)
            lps = np.eye(4)
            lps[:3, :3] = a
            lps[:3, 3] = np.array(params[9:12]) + center - a @ center
            mats.append(FLIP @ lps @ FLIP)
            params = None
    return np.array(mats).reshape(-1, 4, 4)


def run_registration(args: list) -> None:
    """Run ``antsRegistration`` through antspyx with a raw argument list (images as ANTsImage)."""
    from ants.internal import get_lib_fn, process_arguments

    code = get_lib_fn("antsRegistration")(process_arguments(args))
    if code != 0:
        raise RuntimeError(f"antsRegistration failed with exit code {code}")


def pointer(image) -> str:
    """The in-memory handle of an ANTsImage as antsRegistration's argument parser expects it."""
    from ants.internal import get_pointer_string

    return get_pointer_string(image)
