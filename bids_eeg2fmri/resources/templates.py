"""The MNI152 template and masks, from nilearn's package data (no download).

nilearn ships the ICBM 2009a nonlinear *symmetric* template, so the space is named
``MNI152NLin2009aSym`` everywhere in our outputs.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

TEMPLATE_SPACE = "MNI152NLin2009aSym"
_RESOLUTIONS = (1, 2)


def _check_res(resolution: int) -> int:
    if resolution not in _RESOLUTIONS:
        raise ValueError(f"nilearn ships the MNI152 template at 1 or 2 mm, not {resolution}")
    return int(resolution)


def load_template(resolution: int = 2) -> nib.Nifti1Image:
    """Return the T1-weighted MNI152NLin2009aSym template (float32, 0–1) at 1 or 2 mm."""
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=_check_res(resolution))
    # A copy: nilearn caches this image (lru_cache) and derives its brain mask from the cached
    # array (> 0.2); normalising it in place changed the mask of every later step in the same
    # process, so results depended on what the worker had run before.
    data = np.array(img.dataobj, dtype=np.float32, copy=True)
    data /= max(float(data.max()), 1e-6)
    return nib.Nifti1Image(data, img.affine)


def load_mask(kind: str = "brain", resolution: int = 2) -> nib.Nifti1Image:
    """Return a binary uint8 mask: ``brain``, ``gm`` (grey matter) or ``wm`` (white matter)."""
    from nilearn import datasets

    loaders = {"brain": datasets.load_mni152_brain_mask, "gm": datasets.load_mni152_gm_mask,
               "wm": datasets.load_mni152_wm_mask}
    if kind not in loaders:
        raise ValueError(f"unknown mask {kind!r}; choose from {sorted(loaders)}")
    img = loaders[kind](resolution=_check_res(resolution))
    return nib.Nifti1Image((np.asarray(img.dataobj) > 0).astype(np.uint8), img.affine)


def load_tissue_probability(kind: str, resolution: int = 2) -> nib.Nifti1Image:
    """Return the template's continuous ``gm``/``wm`` probability map (float32, 0–1)."""
    from nilearn import datasets

    loaders = {"gm": datasets.load_mni152_gm_template, "wm": datasets.load_mni152_wm_template}
    if kind not in loaders:
        raise ValueError(f"unknown tissue {kind!r}; choose from {sorted(loaders)}")
    img = loaders[kind](resolution=_check_res(resolution))
    data = np.array(img.dataobj, dtype=np.float32, copy=True)  # never normalise nilearn's array
    data /= max(float(data.max()), 1e-6)
    return nib.Nifti1Image(data, img.affine)


def template_grid(resolution: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of an isotropic grid covering the MNI152 template's field of view.

    Parameters
    ----------
    resolution
        Voxel size in mm (1, 2, 3, 4 …).

    Returns
    -------
    shape, affine
        The grid on which outputs at this resolution are written.
    """
    ref = load_template(1)
    extent = np.array(ref.shape[:3]) * np.abs(np.diag(ref.affine)[:3])
    shape = tuple(int(np.ceil(e / resolution)) for e in extent)
    affine = np.diag([float(resolution)] * 3 + [1.0])
    affine[:3, 3] = ref.affine[:3, 3]
    return shape, affine
