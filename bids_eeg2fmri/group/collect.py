"""Participant derivatives → paired arrays for both directions.

The group level reads ``OUTPUT_DIR`` with pybids (``config=["bids", "derivatives"]``) and finds,
per source run, the spectrogram (``desc-stft_spectrogram.h5``), the preprocessed BOLD
(``desc-preproc_bold``), the model-ready BOLD on the model grid (``res-<R>_desc-model_bold``, or
one derived from ``desc-preproc`` into the work dir when the participant level ran without
``--model-ready``), the brain mask and the confounds.

Both directions work on the model grid (default 4 mm), the grid EEG→fMRI models predict:

- **EEG→fMRI** targets are the model-ready voxels (or intensities, ``--target-domain``) inside
  the mask common to every run and both domains, or the atlas regions (their voxels inside that
  common mask); inputs are the spectrograms. The other domain's targets come along for scoring.
- **fMRI→EEG** inputs are the grey-matter parts of the atlas regions plus one non-GM part
  (:func:`~bids_eeg2fmri.data.regions.gm_region_labels` within the common mask), averaged from the
  model-ready series — detrended and z-scored per voxel, so every voxel weighs the same in its
  region mean; targets are the spectrograms.

The spectrogram's ``volume_indices`` count volumes of the original run, and so do the BOLD
derivatives, which keep every volume: spectrogram row ``i`` belongs to BOLD volume ``i``. The
non-steady-state volumes are dropped from the confounds' ``non_steady_state_outlierNN`` flags (the
sidecar's ``NonSteadyStateVolumes`` for a run without confounds), never from the count. Derivatives
whose sidecar has ``NumberOfVolumesDiscardedByUser`` (earlier versions cut the dummy scans off)
are paired with that offset (:func:`~bids_eeg2fmri.data.readers.read_spectrogram`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..bids.derivatives import atomic_path, sidecar_path
from ..errors import DataError, ExitCode, UsageError, UserError
from ..data.montage import Montage, conform, montage_for_runs
from ..data.readers import load_run, non_steady_flags, read_spectrogram
from ..data.regions import NON_GM, gm_region_labels
from ..data.windows import DataSpec, RunArrays
from ..evaluation.crossdomain import OtherDomain, other_domain
from .runfiles import SPACE, RunFiles
from .series import discarded_volumes, model_grid_series, repetition_time, series_mask

log = logging.getLogger("bids_eeg2fmri")

MIN_REGION_VOXELS = 2

# ----------------------------------------------------------------------------- assembled data
@dataclass
class GroupData:
    """Runs of one direction, their description and what the model card records about them."""

    direction: str
    runs: list[RunArrays]
    spec: DataSpec
    files: list[RunFiles]
    grid_shape: tuple[int, int, int]
    affine: np.ndarray
    labels: np.ndarray | None
    region_names: list[str] | None
    resolution: int
    atlas: str | None
    fmri_input: str = "regions"
    montage: Montage | None = None
    #: The metric domain of the BOLD arrays (fMRI→EEG: always fluctuations).
    domain: str = "fluctuations"
    #: EEG→fMRI targets in the other domain, for scoring there (None when not derivable).
    other: OtherDomain | None = None

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(r.subject for r in self.runs))

    def describe(self) -> dict[str, Any]:
        """The ``Data`` block of a model card."""
        return {
            "Subjects": self.subjects, "Runs": [f.key for f in self.files],
            "Channels": list(self.spec.channels), "Frequencies": list(self.spec.frequencies),
            "FramesPerTR": int(self.spec.n_frames), "RepetitionTime": float(self.spec.tr),
            "EEGBands": None if self.spec.eeg_bands is None else self.spec.eeg_bands["bands"],
            "Target" if self.direction == "eeg2fmri" else "Input":
                self.spec.target if self.direction == "eeg2fmri" else self.fmri_input,
            "Atlas": self.atlas, "Regions": self.region_names,
            "Montage": None if self.montage is None else self.montage.describe(),
            "Grid": {"Space": SPACE, "Resolution": f"{self.resolution} mm",
                     "Shape": list(self.grid_shape), "Affine": np.asarray(self.affine).tolist(),
                     "Voxels": int(self.spec.mask.sum()) if self.spec.mask is not None else None}}


def paired_runs(runs: Sequence[RunFiles]) -> list[RunFiles]:
    """The runs with both EEG and BOLD derivatives."""
    return [r for r in runs if r.paired]


def _common_mask(series: Sequence[Path], read: dict[Path, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The runs' common brain mask and grid; ``read`` keeps each series' mask, so a series two
    directions share is read once."""
    read = {} if read is None else read
    masks, affine, shape = [], None, None
    for path in series:
        img = nib.load(os.fspath(path))
        if shape is None:
            shape, affine = img.shape[:3], img.affine
        elif img.shape[:3] != shape or not np.allclose(img.affine, affine, atol=1e-3):
            raise DataError(f"grid {img.shape[:3]} differs from the other runs' {shape} on the "
                            "model grid", path=path)
        if path not in read:
            read[path] = series_mask(path)
        masks.append(read[path])
    common = np.logical_and.reduce(masks)
    if not common.any():
        raise DataError("the runs' brain masks share no voxel on the model grid", path=series[0])
    return common, np.asarray(affine)


def _region_subset(labels: np.ndarray, names: list[str], keep: Sequence[str],
                   always: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """Relabel to the regions named in ``keep`` (plus ``always``), numbered 1… in ``names`` order."""
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise UsageError(f"unknown region(s) {', '.join(unknown)}; the atlas on this grid has "
                         f"e.g. {', '.join(names[:5])}")
    wanted = [n for n in names if n in keep or n in always]
    out = np.zeros_like(labels)
    for new, name in enumerate(wanted, start=1):
        out[labels == names.index(name) + 1] = new
    return out, wanted


def collect(files: Sequence[RunFiles], direction: str, **options: Any) -> GroupData:
    """:func:`collect_directions` for one direction."""
    return collect_directions(files, [direction], **options)[direction]


def collect_directions(files: Sequence[RunFiles], directions: Sequence[str], *, res: int = 4,
                       target: str = "regions", atlas: str = "harvard-oxford",
                       regions: Sequence[str] = (), cache_dir: Path,
                       expected_eeg: Callable[[RunFiles], np.ndarray | None] | None = None,
                       fmri_input: str = "regions", eeg_channels: str = "common",
                       target_domain: str = "fluctuations", intensity_grid: str = "model"
                       ) -> dict[str, GroupData]:
    """Paired runs as :class:`RunArrays` for each of ``directions`` (see the module docstring).

    Each spectrogram and each model-grid BOLD series is read once, whatever the number of
    directions and domains; the directions share the EEG arrays.

    Parameters
    ----------
    files
        Runs found by :func:`find_runs`; those without both modalities are skipped.
    directions
        ``eeg2fmri`` and/or ``fmri2eeg``.
    res
        Model grid in mm.
    target
        EEG→fMRI targets: ``voxels`` or ``regions``.
    atlas
        ``harvard-oxford`` or ``aal``.
    regions
        Restrict regions (both directions) to these atlas names; fMRI→EEG keeps the non-GM part.
    fmri_input
        fMRI→EEG input: ``regions`` (GM parts of atlas regions + non-GM) or ``pca`` (the voxels
        of the common mask, for principal components fitted per fold by the caller).
    cache_dir
        Work folder for derived series and BOLD memory maps.
    expected_eeg
        Returns a run's noiseless spectrogram (the file's shape; simulated data) or None; kept
        as ``RunArrays.eeg_truth`` (fMRI→EEG) when every run has one, for the noise ceiling.
    eeg_channels
        Runs with different channels: keep the ``common`` ones or ``interpolate`` the missing
        ones (:mod:`~bids_eeg2fmri.data.montage`).
    target_domain, intensity_grid
        The EEG→fMRI targets' metric domain and grid (:mod:`~bids_eeg2fmri.evaluation.domains`).
        EEG→fMRI also gets the other domain's targets on the same grid
        (``GroupData.other``, for :mod:`~bids_eeg2fmri.evaluation.crossdomain`), in the
        voxels both domains share; fMRI→EEG always reads fluctuations on the model grid, so its
        arrays do not depend on these options.

    Raises
    ------
    DataError
        For inconsistent files (grids, channels, frequencies, TR), naming the file.
    UserError
        Exit 18 when no run is paired.
    """
    paired = paired_runs(files)
    if not paired:
        raise UserError("no run has both EEG and BOLD derivatives: nothing to train on",
                        ExitCode.NO_DATA_SELECTED)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # EEG→fMRI reads its target domain; fMRI→EEG always reads fluctuations on the model grid.
    want = {d: (target_domain, intensity_grid) if d == "eeg2fmri" else ("fluctuations", "model")
            for d in directions}
    series = {key: [model_grid_series(r, res, cache_dir / "model_bold", *key) for r in paired]
              for key in dict.fromkeys(want.values())}
    offsets = {key: [discarded_volumes(bold) for bold in paths] for key, paths in series.items()}
    other = (_other_series(paired, res, cache_dir, series, offsets, want["eeg2fmri"])
             if "eeg2fmri" in directions else None)
    read = {d: [want[d]] + ([other] if d == "eeg2fmri" and other else []) for d in directions}
    masks: dict[Path, np.ndarray] = {}
    commons = {d: _common_mask([p for key in read[d] for p in series[key]], masks)
               for d in directions}
    targets = {d: _targets(d, *commons[d], series[want[d]][0], target=target, atlas=atlas,
                           regions=regions, fmri_input=fmri_input, cache_dir=cache_dir)
               for d in directions}
    uses = Counter(key for keys in read.values() for key in keys)
    montage, positions = montage_for_runs({f.key: f.spectrogram for f in paired}, eeg_channels)
    arrays: dict[str, list[tuple[RunArrays, DataSpec]]] = {d: [] for d in directions}
    other_bold: list[np.ndarray] = []
    for i, f in enumerate(paired):
        images: dict[tuple[str, str], nib.Nifti1Image] = {}
        spectra: dict[tuple[int, int], tuple] = {}
        for d, key in [(d, k) for d in directions for k in read[d]]:
            bold, offset = series[key][i], offsets[key][i]
            if key not in images:
                img = nib.load(os.fspath(bold))
                if uses[key] > 1:  # read once for every target set that uses it
                    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine,
                                          img.header)
                images[key] = img
            img = images[key]
            if (img.shape[3], offset) not in spectra:
                eeg, valid, chans, freqs = read_spectrogram(f.spectrogram, img.shape[3], offset)
                eeg = conform(eeg, chans, montage, positions=positions, interpolate=True,
                              path=f.spectrogram)
                spectra[img.shape[3], offset] = (eeg, valid, list(montage.channels), freqs)
            flags = None if f.confounds else non_steady_flags(img.shape[3], sidecar=sidecar_path(bold))
            labels, names, mask_path = targets[d]
            run, spec = load_run(f.spectrogram, bold, subject=f.subject, run=f.run_label,
                                 mask=mask_path, atlas_labels=labels, confounds=f.confounds,
                                 non_steady=flags,
                                 tr=repetition_time(bold), volume_offset=offset,
                                 cache_dir=cache_dir / "arrays", image=img,
                                 spectrum=spectra[img.shape[3], offset])
            if key == other and d == "eeg2fmri":
                other_bold.append(run.bold)
                continue
            if names is not None:
                spec.region_names = list(names)
            arrays[d].append((run, spec))
    out = {}
    for d in directions:
        runs = _consistent(arrays[d], paired)
        if d == "fmri2eeg" and expected_eeg is not None:
            _add_truth(runs, paired, offsets[want[d]], expected_eeg, montage, positions)
        labels, names, _ = targets[d]
        pca = d == "fmri2eeg" and fmri_input == "pca"
        uses_atlas = not pca and (d == "fmri2eeg" or target == "regions")
        common, affine = commons[d]
        out[d] = GroupData(d, runs, arrays[d][0][1], list(paired), tuple(common.shape), affine,
                           labels, names, res, atlas if uses_atlas else None,
                           fmri_input if d == "fmri2eeg" else "regions", montage,
                           domain=want[d][0],
                           other=OtherDomain(other[0], other_bold) if d == "eeg2fmri" and other
                           else None)
    return out


def _other_series(paired: list[RunFiles], res: int, cache_dir: Path,
                  series: dict[tuple[str, str], list[Path]],
                  offsets: dict[tuple[str, str], list[int]], trained: tuple[str, str]
                  ) -> tuple[str, str] | None:
    """Add the EEG→fMRI series of the domain the models do not train in (on the same grid) to
    ``series`` and ``offsets``; its key, or None (with a warning) when a run lacks what it is
    derived from or its volumes do not line up with the trained domain's."""
    key = (other_domain(trained[0]), trained[1])
    if key not in series:
        try:
            series[key] = [model_grid_series(r, res, cache_dir / "model_bold", *key)
                           for r in paired]
        except DataError as exc:
            log.warning("EEG→fMRI is scored in the %s domain only: %s", trained[0], exc)
            return None
        offsets[key] = [discarded_volumes(bold) for bold in series[key]]
    for a, b, oa, ob in zip(series[trained], series[key], offsets[trained], offsets[key]):
        if oa != ob or nib.load(os.fspath(a)).shape != nib.load(os.fspath(b)).shape:
            log.warning("EEG→fMRI is scored in the %s domain only: %s and %s hold different "
                        "volumes", trained[0], a.name, b.name)
            return None
    return key


def _targets(direction: str, common: np.ndarray, affine: np.ndarray, first: Path, *,
             target: str, atlas: str, regions: Sequence[str], fmri_input: str, cache_dir: Path
             ) -> tuple[np.ndarray | None, list[str] | None, Path | None]:
    """What a direction's BOLD arrays hold: atlas labels and names, or the common mask's path."""
    from ..resources.atlases import load_atlas

    grid = nib.Nifti1Image(common.astype(np.uint8), affine)
    pca = direction == "fmri2eeg" and fmri_input == "pca"
    if direction == "fmri2eeg" and not pca:
        lab = gm_region_labels(grid, atlas=atlas, brain_mask=common, min_voxels=MIN_REGION_VOXELS)
        labels, names = lab.labels, lab.names
        if regions:
            labels, names = _region_subset(labels, names, regions, always=[NON_GM])
        return labels, names, None
    if target == "regions" and not pca:
        at = load_atlas(atlas, target=grid)
        raw = np.asarray(at.image.dataobj).astype(int) * common
        names = []
        labels = np.zeros(common.shape, dtype=np.int32)
        for value in sorted(at.labels):
            sel = raw == value
            if sel.sum() >= MIN_REGION_VOXELS:
                names.append(at.labels[value])
                labels[sel] = len(names)
        if regions:
            labels, names = _region_subset(labels, names, regions)
        if len(names) < 2:
            raise DataError(f"fewer than 2 {atlas} regions lie inside the runs' common brain mask",
                            path=first)
        return labels, names, None
    mask_path = cache_dir / f"common_mask_{hashlib.sha1(common.tobytes()).hexdigest()[:12]}.nii.gz"
    if not mask_path.exists():
        with atomic_path(mask_path) as tmp:
            nib.save(grid, tmp)
    return None, None, mask_path


def _consistent(arrays: list[tuple[RunArrays, DataSpec]], paired: list[RunFiles]) -> list[RunArrays]:
    """The runs, after checking that each one's spec matches the first run's."""
    spec0 = arrays[0][1]
    for (_, spec), f in zip(arrays[1:], paired[1:]):
        try:
            spec0.check_compatible(spec)
        except DataError as exc:
            raise DataError(f"differs from the other runs: {exc.message}",
                            path=f.spectrogram) from None
    return [run for run, _ in arrays]


def _add_truth(runs: list[RunArrays], paired: list[RunFiles], offsets: list[int],
               expected_eeg: Callable[[RunFiles], np.ndarray | None], montage: Montage,
               positions: dict[str, np.ndarray] | None) -> None:
    truths = [expected_eeg(f) for f in paired]
    if truths and all(t is not None for t in truths):
        for f, run, offset, t in zip(paired, runs, offsets, truths):
            truth, _, chans, _ = read_spectrogram(f.spectrogram, run.n_volumes, offset, values=t)
            run.eeg_truth = conform(truth, chans, montage, positions=positions, interpolate=True,
                                    path=f.spectrogram)
