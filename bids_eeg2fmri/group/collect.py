"""Participant derivatives → paired arrays for both directions.

The group level reads ``OUTPUT_DIR`` with pybids (``config=["bids", "derivatives"]``) and finds,
per source run, the spectrogram (``desc-stft_spectrogram.h5``), the preprocessed BOLD
(``desc-preproc_bold``), the model-ready BOLD on the model grid (``res-<R>_desc-model_bold``, or
one derived from ``desc-preproc`` into the work dir when the participant level ran without
``--model-ready``), the brain mask and the confounds.

Both directions work on the model grid (default 4 mm), the grid EEG→fMRI models predict:

- **EEG→fMRI** targets are the model-ready voxels inside the mask common to every run, or the
  atlas regions (their voxels inside that common mask); inputs are the spectrograms.
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
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..bids.derivatives import SOURCE_ENTITIES, atomic_path, parse_entities
from ..bids.runkey import run_entities, run_key
from ..errors import DataError, ExitCode, UsageError, UserError
from ..fmri.io import write_masked_series
from ..evaluation.domains import minmax_volumes, resize_grid
from ..fmri.model_ready import model_ready
from ..data.montage import Montage, conform, montage_for_runs
from ..data.readers import load_run, non_steady_flags, read_spectrogram
from ..data.regions import NON_GM, gm_region_labels
from ..data.windows import DataSpec, RunArrays

log = logging.getLogger("bids_eeg2fmri")

SPACE = "MNI152NLin2009aSym"
MIN_REGION_VOXELS = 2


@dataclass
class RunFiles:
    """The derivatives of one source run (``key`` = its entities, e.g. ``sub-01_task-rest_run-1``)."""

    key: str
    subject: str
    entities: dict[str, str]
    spectrogram: Path | None = None
    preproc_bold: Path | None = None
    model_bold: dict[int, Path] = field(default_factory=dict)
    mask: Path | None = None
    confounds: Path | None = None

    @property
    def paired(self) -> bool:
        """True when the run has both a spectrogram and a BOLD series."""
        return self.spectrogram is not None and (self.preproc_bold is not None or bool(self.model_bold))

    @property
    def run_label(self) -> str:
        """The key without the subject (``task-rest_run-1``): unique within a subject."""
        return "_".join(f"{k}-{v}" for k, v in self.entities.items() if k != "sub") or "1"


def read_json(path: Path) -> dict[str, Any]:
    """A sidecar's content; a missing or broken sidecar is a :class:`DataError` naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("sidecar is missing", path=path) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read sidecar: {exc}", path=path) from None


def sidecar_of(path: Path) -> Path:
    """``x.nii.gz``/``x.h5`` → ``x.json``."""
    return path.with_name(path.name.split(".")[0] + ".json")


def find_runs(out_dir: str | os.PathLike, *, participant_label: Sequence[str] = ()) -> list[RunFiles]:
    """Index the participant derivatives of ``out_dir`` by source run.

    Parameters
    ----------
    out_dir
        The derivatives dataset written by the participant level.
    participant_label
        Restrict to these participants (bare labels); default all.

    Returns
    -------
    list of RunFiles
        Sorted by key; runs with no spectrogram and no BOLD are left out.

    Raises
    ------
    UserError
        Exit 66 when ``out_dir`` holds no participant-level outputs; exit 18 when the selected
        participants have none.
    """
    from bids.layout import BIDSLayout

    out = Path(out_dir)
    if not (out / "dataset_description.json").is_file():
        raise UserError("no participant-level outputs here: run the participant level first",
                        ExitCode.NO_INPUT, out)
    layout = BIDSLayout(str(out), validate=False, config=["bids", "derivatives"])
    runs: dict[str, RunFiles] = {}
    for f in layout.get(extension=[".h5", ".nii.gz", ".tsv"]):
        path = Path(f.path)
        ents = parse_entities(path)
        if "sub" not in ents or path.name.startswith("."):
            continue
        key = run_key(ents)
        desc, suffix, space = ents.get("desc"), ents["suffix"], ents.get("space")
        run = runs.setdefault(key, RunFiles(key, ents["sub"], run_entities(ents)))
        if suffix == "spectrogram" and desc == "stft":
            run.spectrogram = _only(run.spectrogram, path, key)
        elif suffix == "bold" and space == SPACE and desc == "preproc":
            run.preproc_bold = _only(run.preproc_bold, path, key)
        elif suffix == "bold" and space == SPACE and desc == "model" and ents.get("res", "").isdigit():
            run.model_bold[int(ents["res"])] = path
        elif suffix == "mask" and space == SPACE and desc == "brain":
            run.mask = path
        elif suffix == "timeseries" and desc == "confounds":
            run.confounds = path
    if not runs:
        raise UserError("no participant-level derivatives here: run the participant level first",
                        ExitCode.NO_INPUT, out)
    selected = [r for k, r in sorted(runs.items())
                if not participant_label or r.subject in participant_label]
    selected = [r for r in selected if r.spectrogram is not None or r.paired]
    if not selected:
        raise UserError(f"no derivatives of participant(s) {', '.join(participant_label)}",
                        ExitCode.NO_DATA_SELECTED, out)
    return selected


def _only(current: Path | None, path: Path, key: str) -> Path:
    """Refuse a file of another source run (``dir``, ``rec``, ``echo``…) under the same run key:
    it would be paired arbitrarily. Outputs of one source (e.g. two resolutions) keep the last."""
    if current is not None and _source(current) != _source(path):
        raise DataError(f"two derivatives for run {key} ({current.name}, {path.name}); select one "
                        "with --bids-filter-file at the participant level", path=path)
    return path


def _source(path: Path) -> dict[str, str]:
    ents = parse_entities(path)
    return {k: ents[k] for k in SOURCE_ENTITIES if k in ents}


# ----------------------------------------------------------------------------- model grid
def discarded_volumes(bold: Path) -> int:
    """Leading volumes of the original run missing from a BOLD derivative (its sidecar)."""
    meta = read_json(sidecar_of(bold))
    return int(meta.get("NumberOfVolumesDiscardedByUser", 0) or 0)


def repetition_time(bold: Path) -> float:
    """The sidecar's ``RepetitionTime`` (the NIfTI header's when the sidecar lacks it)."""
    meta = read_json(sidecar_of(bold))
    tr = meta.get("RepetitionTime") or nib.load(os.fspath(bold)).header.get_zooms()[3]
    if not tr or float(tr) <= 0:
        raise DataError("no positive RepetitionTime in the sidecar or header", path=bold)
    return float(tr)


def model_grid_series(run: RunFiles, res: int, cache_dir: Path,
                      domain: str = "fluctuations", grid: str = "model") -> Path:
    """The run's model-ready BOLD on the ``res`` mm template grid.

    The participant level's ``desc-model_bold`` when it exists at that resolution; otherwise
    derived from ``desc-preproc`` (averaged over the mask inside each coarse voxel, then
    detrended and z-scored per voxel with :func:`~bids_eeg2fmri.fmri.model_ready.model_ready`,
    fitted on the volumes not flagged non-steady) and cached in ``cache_dir`` next to a copy of its
    sidecar. In the ``intensity`` domain the averaged intensities are min-max normalised per
    volume instead (:func:`~bids_eeg2fmri.evaluation.domains.minmax_volumes`), always from
    ``desc-preproc``, on the model grid or (``grid="resize"``) the 64×64×30 resize of the
    template's field of view.
    """
    if res in run.model_bold and domain == "fluctuations" and grid == "model":
        return run.model_bold[res]
    if run.preproc_bold is None:
        raise DataError(f"{run.key}: no BOLD series", path=run.spectrogram)
    if run.mask is None:
        raise DataError(f"{run.key}: desc-preproc_bold has no desc-brain_mask beside it",
                        path=run.preproc_bold)
    conf_stamp = run.confounds.stat().st_mtime_ns if run.confounds is not None else ""
    digest = hashlib.sha1(f"{run.preproc_bold.resolve()}|{run.preproc_bold.stat().st_mtime_ns}|"
                          f"{res}|{grid}|{conf_stamp}".encode()).hexdigest()[:12]
    desc = "model" if domain == "fluctuations" else "intensity"
    dest = cache_dir / f"{run.key}_res-{res}_desc-{desc}_bold_{digest}.nii.gz"
    if dest.exists():
        return dest
    from ..resources.templates import template_grid

    log.info("%s: deriving the %s %s series from desc-preproc", run.key,
             f"{res} mm" if grid == "model" else "resized", desc)
    img = nib.load(os.fspath(run.preproc_bold))
    mask_img = nib.load(os.fspath(run.mask))
    if img.ndim != 4 or mask_img.shape != img.shape[:3]:
        raise DataError(f"BOLD {img.shape} and mask {mask_img.shape} do not share a grid",
                        path=run.preproc_bold)
    shape, affine = template_grid(res) if grid == "model" else resize_grid()
    values, mask = _downsample(np.asarray(img.dataobj, dtype=np.float32),
                               np.asarray(mask_img.dataobj) > 0, img.affine, shape, affine)
    tr = repetition_time(run.preproc_bold)
    cache_dir.mkdir(parents=True, exist_ok=True)
    steady = ~non_steady_flags(values.shape[1], run.confounds, sidecar_of(run.preproc_bold))
    write_masked_series(dest, model_ready(values, sample_mask=steady) if domain == "fluctuations"
                        else minmax_volumes(values, axis=0), mask, affine, tr)  # atomic itself
    meta = read_json(sidecar_of(run.preproc_bold))
    with atomic_path(sidecar_of(dest)) as tmp:
        tmp.write_text(json.dumps(meta))
    return dest


def _downsample(data: np.ndarray, mask: np.ndarray, src_affine: np.ndarray,
                shape: tuple[int, int, int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked box average of a fine series at the voxel centres of a coarser grid.

    Returns ``(voxels, t)`` values inside the coarse mask (coarse voxels whose centre falls on
    brain) and that mask.
    """
    from scipy.ndimage import map_coordinates, uniform_filter

    ratio = np.abs(np.diag(affine)[:3]) / np.abs(np.diag(src_affine)[:3])
    size = [max(1, int(round(r))) for r in ratio]
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    to_src = np.linalg.inv(src_affine) @ affine
    coords = to_src[:3, :3] @ ijk + to_src[:3, 3:4]
    m = mask.astype(np.float32)
    weight = uniform_filter(m, size=size, mode="constant")
    w_at = map_coordinates(weight, coords, order=0, mode="constant", cval=0.0)
    centre = map_coordinates(m, coords, order=0, mode="constant", cval=0.0) > 0
    coarse = (centre & (w_at > 0)).reshape(shape)
    sel = coords[:, coarse.ravel()]
    w_sel = w_at[coarse.ravel()]
    out = np.empty((int(coarse.sum()), data.shape[3]), dtype=np.float32)
    for t in range(data.shape[3]):
        # Averaging only brain voxels: zeros outside the mask would darken edge voxels.
        num = uniform_filter(data[..., t] * m, size=size, mode="constant")
        out[:, t] = map_coordinates(num, sel, order=0, mode="constant") / w_sel
    return out, coarse


def series_mask(bold: Path) -> np.ndarray:
    """Voxels of a model-ready series that vary over time (the series is zero outside its mask)."""
    data = np.asarray(nib.load(os.fspath(bold)).dataobj, dtype=np.float32)
    return data.std(axis=3) > 0


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


def _common_mask(series: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    masks, affine, shape = [], None, None
    for path in series:
        img = nib.load(os.fspath(path))
        if shape is None:
            shape, affine = img.shape[:3], img.affine
        elif img.shape[:3] != shape or not np.allclose(img.affine, affine, atol=1e-3):
            raise DataError(f"grid {img.shape[:3]} differs from the other runs' {shape} on the "
                            "model grid", path=path)
        masks.append(series_mask(path))
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
    directions; the directions share the EEG arrays.

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
    series = [model_grid_series(r, res, cache_dir / "model_bold", target_domain, intensity_grid)
              for r in paired]
    common, affine = _common_mask(series)
    targets = {d: _targets(d, common, affine, series[0], target=target, atlas=atlas,
                           regions=regions, fmri_input=fmri_input, cache_dir=cache_dir)
               for d in directions}
    offsets = [discarded_volumes(bold) for bold in series]
    montage, positions = montage_for_runs({f.key: f.spectrogram for f in paired}, eeg_channels)
    arrays: dict[str, list[tuple[RunArrays, DataSpec]]] = {d: [] for d in directions}
    for f, bold, offset in zip(paired, series, offsets):
        img = nib.load(os.fspath(bold))
        if len(directions) > 1:
            img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine, img.header)
        eeg, valid, chans, freqs = read_spectrogram(f.spectrogram, img.shape[3], offset)
        flags = None if f.confounds else non_steady_flags(img.shape[3], sidecar=sidecar_of(bold))
        eeg = conform(eeg, chans, montage, positions=positions, interpolate=True,
                      path=f.spectrogram)
        spectrum = (eeg, valid, list(montage.channels), freqs)
        for d in directions:
            labels, names, mask_path = targets[d]
            run, spec = load_run(f.spectrogram, bold, subject=f.subject, run=f.run_label,
                                 mask=mask_path, atlas_labels=labels, confounds=f.confounds,
                                 non_steady=flags,
                                 tr=repetition_time(bold), volume_offset=offset,
                                 cache_dir=cache_dir / "arrays", image=img, spectrum=spectrum)
            if names is not None:
                spec.region_names = list(names)
            arrays[d].append((run, spec))
    out = {}
    for d in directions:
        runs = _consistent(arrays[d], paired)
        if d == "fmri2eeg" and expected_eeg is not None:
            _add_truth(runs, paired, offsets, expected_eeg, montage, positions)
        labels, names, _ = targets[d]
        pca = d == "fmri2eeg" and fmri_input == "pca"
        uses_atlas = not pca and (d == "fmri2eeg" or target == "regions")
        out[d] = GroupData(d, runs, arrays[d][0][1], list(paired), tuple(common.shape), affine,
                           labels, names, res, atlas if uses_atlas else None,
                           fmri_input if d == "fmri2eeg" else "regions", montage)
    return out


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
