"""Region time series as fMRI→EEG input: atlas regions within grey matter plus one non-GM part.

The seed splits the brain into the grey-matter parts of atlas regions and one remaining
non-grey-matter part (white matter and CSF), whose signal carries physiological and global
fluctuations; the single-region analysis then asks what each GM region adds to the non-GM signal.
:func:`gm_region_labels` builds that partition on a BOLD grid from an atlas
(:func:`~bids_eeg2fmri.resources.atlases.load_atlas`: Harvard-Oxford or AAL) and nilearn's MNI152 GM
mask (:func:`~bids_eeg2fmri.resources.templates.load_mask`), :func:`region_timeseries` averages a run
into it. :class:`VoxelPCA` is the alternative input: principal components of the masked voxels,
fitted on training runs only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import DataError
from ..metrics import region_means
from .windows import DataSpec, RunArrays

NON_GM = "non-GM"


@dataclass
class RegionLabels:
    """A label image on a BOLD grid and the names of its labels ``1 … n`` (non-GM last)."""

    labels: np.ndarray
    names: list[str]

    @property
    def n_regions(self) -> int:
        return len(self.names)


def gm_region_labels(target: nib.Nifti1Image, *, atlas: str = "harvard-oxford",
                     brain_mask: np.ndarray | None = None, min_voxels: int = 1) -> RegionLabels:
    """GM parts of the atlas regions plus one non-GM part, on ``target``'s (MNI-space) grid.

    Parameters
    ----------
    target
        Image defining the grid (a model-ready BOLD run or its mask), in MNI152 space.
    atlas
        ``harvard-oxford`` or ``aal``.
    brain_mask
        Boolean brain mask on the grid; default nilearn's MNI152 brain mask resampled onto it.
    min_voxels
        GM regions with fewer voxels on this grid are merged into the non-GM part.

    Returns
    -------
    RegionLabels
        Label ``i`` (1-based) is ``names[i - 1]``; the last is ``non-GM``: brain voxels outside the
        GM mask or outside every atlas region.
    """
    from ..resources.atlases import load_atlas, resample_labels
    from ..resources.templates import load_mask

    grid = target.shape[:3]
    at = load_atlas(atlas, target=nib.Nifti1Image(np.zeros(grid, np.uint8), target.affine))
    lab = np.asarray(at.image.dataobj).astype(int)
    gm = np.asarray(resample_labels(load_mask("gm", 2), target).dataobj) > 0
    if brain_mask is None:
        brain = np.asarray(resample_labels(load_mask("brain", 2), target).dataobj) > 0
    else:
        brain = np.asarray(brain_mask, dtype=bool)
        if brain.shape != grid:
            raise DataError(f"brain mask grid {brain.shape} differs from the image grid {grid}")
    brain |= gm & (lab > 0)
    out = np.zeros(grid, dtype=np.int32)
    names = []
    for value in sorted(at.labels):
        sel = (lab == value) & gm & brain
        if sel.sum() >= min_voxels:
            names.append(at.labels[value])
            out[sel] = len(names)
    rest = brain & (out == 0)
    if not rest.any():
        raise DataError("no brain voxel lies outside the grey-matter regions: no non-GM part")
    names.append(NON_GM)
    out[rest] = len(names)
    if len(names) < 2:
        raise DataError(f"no {atlas} region overlaps grey matter on this grid")
    return RegionLabels(out, names)


def region_timeseries(data: np.ndarray, labels: RegionLabels) -> np.ndarray:
    """Mean signal of every label, ``(n_volumes, n_regions)``.

    Parameters
    ----------
    data
        4-D ``(x, y, z, volumes)`` array on the labels' grid.
    """
    data = np.asarray(data)
    if data.ndim != 4 or data.shape[:3] != labels.labels.shape:
        raise DataError(f"BOLD of shape {data.shape} does not fit the {labels.labels.shape} "
                        "label grid")
    means, _ = region_means(data.reshape(-1, data.shape[3]).T, labels.labels.ravel(),
                            ids=np.arange(1, labels.n_regions + 1))
    return means.astype(np.float32)


class VoxelPCA:
    """Principal components of masked voxel time series, fitted on training runs only.

    Voxels are z-scored per run (as the model-ready BOLD already is), the training runs stacked in
    time, and the leading right singular vectors kept; a run's input is its projection on them.
    """

    def __init__(self, n_components: int = 20) -> None:
        if n_components < 1:
            raise DataError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.components: np.ndarray | None = None

    @staticmethod
    def _z(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        sd = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    def fit(self, runs: Sequence[np.ndarray]) -> "VoxelPCA":
        """Fit from ``(n_volumes, n_voxels)`` arrays of the training runs."""
        stacked = np.concatenate([self._z(r) for r in runs])
        k = min(self.n_components, *stacked.shape)
        _, _, vt = np.linalg.svd(stacked, full_matrices=False)
        self.components = vt[:k]
        return self

    def transform(self, run: np.ndarray) -> np.ndarray:
        """Component scores ``(n_volumes, n_components)`` of one run."""
        if self.components is None:
            raise DataError("VoxelPCA is not fitted")
        run = np.asarray(run)
        if run.shape[1] != self.components.shape[1]:
            raise DataError(f"{run.shape[1]} voxels given, the components have "
                            f"{self.components.shape[1]}")
        return (self._z(run) @ self.components.T).astype(np.float32)

    def names(self) -> list[str]:
        return [f"pc{i + 1}" for i in range(0 if self.components is None else len(self.components))]

    def state(self) -> dict[str, Any]:
        """Plain-type state for model files."""
        if self.components is None:
            raise DataError("VoxelPCA is not fitted")
        return {"n_components": self.n_components,
                "components": np.asarray(self.components, dtype=np.float32)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "VoxelPCA":
        pca = cls(int(state["n_components"]))
        pca.components = np.asarray(state["components"], dtype=np.float64)
        return pca


def fit_voxel_pca(runs: Sequence[RunArrays], volumes: dict[int, np.ndarray],
                  n_components: int) -> VoxelPCA:
    """Fit :class:`VoxelPCA` on the given volumes of the given runs only.

    Parameters
    ----------
    runs
        Runs whose ``bold`` holds voxel series ``(n_volumes, n_voxels)``.
    volumes
        Run index → the volumes the training samples read (their windows): a held-out subject's
        run, or the test block of a run, is absent, so its voxels never shape the components.
    n_components
        Components to keep (fewer when the training volumes are fewer).
    """
    parts = []
    for i, vols in sorted(volumes.items()):
        run = runs[i]
        vols = np.asarray(vols, dtype=int)
        vols = vols[(vols >= 0) & (vols < run.n_volumes)]
        vols = vols[run.retained[vols]]
        if len(vols) > 1:
            parts.append(np.asarray(run.bold[:])[vols])
    if not parts:
        raise DataError("no training volumes to fit the voxel PCA on")
    return VoxelPCA(n_components).fit(parts)


def project_runs(runs: Sequence[RunArrays], pca: VoxelPCA) -> list[RunArrays]:
    """The runs with their voxel series replaced by component scores (retained volumes only
    enter each run's z-scoring; the others are scored but never read by a sample)."""
    out = []
    for run in runs:
        vox = np.asarray(run.bold[:], dtype=np.float32)
        scores = np.zeros((run.n_volumes, len(pca.names())), dtype=np.float32)
        scores[run.retained] = pca.transform(vox[run.retained])
        out.append(dataclasses.replace(run, bold=scores, truth=None))
    return out


def pca_spec(spec: DataSpec, pca: VoxelPCA) -> DataSpec:
    """The description of :func:`project_runs`' output: components as the input 'regions'."""
    names = pca.names()
    return DataSpec(spec.channels, spec.frequencies, spec.n_frames, spec.tr, "regions",
                    len(names), region_names=names)
