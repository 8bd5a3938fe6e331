"""Index a BIDS EEG-fMRI dataset and pair each BOLD run with its simultaneous EEG run.

Pairs are matched on the entities that identify an acquisition (sub, ses, task, acq, run). Runs
with only one modality are kept and labelled: an EEG-only run is a valid input for applying a
trained EEG→fMRI model later, a BOLD-only run for the fMRI→EEG direction.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, ExitCode, UsageError, UserError
from .niftiio import check_nifti
from .runkey import RUN_KEY_ENTITIES, run_key

PAIR_ENTITIES = tuple(long for _, long in RUN_KEY_ENTITIES)
BOLD_EXTENSIONS = (".nii", ".nii.gz")
EEG_FORMATS = {".vhdr": "BrainVision", ".edf": "EDF", ".bdf": "BDF", ".set": "EEGLAB", ".fif": "FIF"}
# What the indexer skips. Unlike fMRIPrep we must not skip eeg/.
IGNORE = ("code", "stimuli", "sourcedata", "models", "derivatives", re.compile(r"^\."),
          re.compile(r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?(beh|dwi|fmap|perf|meg|ieeg|pet|micr|nirs|motion)/"))
FILTER_KEYS = ("bold", "eeg", "t1w")
# Relative difference between the NIfTI header's TR (pixdim[4]) and RepetitionTime worth a warning.
TR_RTOL = 1e-3

log = logging.getLogger("bids_eeg2fmri.bids")


@dataclass
class BoldRun:
    """One BOLD series and the metadata the fMRI stages need."""

    path: Path
    entities: dict[str, Any]
    repetition_time: float
    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    slice_timing: list[float] | None
    slice_encoding_direction: str
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def n_volumes(self) -> int:
        """Number of volumes in the series."""
        return int(self.shape[3])


@dataclass
class EEGRun:
    """One EEG recording and the metadata the EEG stages need."""

    path: Path
    entities: dict[str, Any]
    format: str
    sampling_frequency: float | None
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)

    def bids_path(self):
        """The ``mne_bids.BIDSPath`` of this recording, for ``mne_bids.read_raw_bids``."""
        from mne_bids import get_bids_path_from_fname

        return get_bids_path_from_fname(self.path)


@dataclass
class RunPair:
    """A BOLD run and the EEG recorded with it; either side may be missing."""

    entities: dict[str, Any]
    bold: BoldRun | None = None
    eeg: EEGRun | None = None

    @property
    def kind(self) -> str:
        """``paired``, ``eeg-only`` or ``bold-only``."""
        if self.bold is not None and self.eeg is not None:
            return "paired"
        return "eeg-only" if self.eeg is not None else "bold-only"

    @property
    def name(self) -> str:
        """The shared entities as a BIDS-style prefix, e.g. ``sub-01_task-rest_run-1``."""
        return run_key(self.entities)


@dataclass
class ParticipantPlan:
    """Everything selected for one participant.

    ``skipped`` maps a run's name to why it is not processed (its data files are not fetched).
    """

    subject: str
    pairs: list[RunPair]
    t1w: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def unusable(path: str | os.PathLike) -> str | None:
    """Why a data file cannot be read as it is on disk, or ``None`` when it can.

    macOS ``._*`` metadata files, broken symlinks (DataLad/git-annex content not fetched with
    ``datalad get``) and 0-byte placeholders; for a BrainVision header, also its data and marker
    files.
    """
    path = Path(path)
    if path.name.startswith("._"):
        return "macOS metadata file (._*)"
    if path.is_symlink() and not path.exists():
        return "not fetched (broken symlink: run `datalad get` on it)"
    if not path.exists():
        return "missing"
    if path.stat().st_size == 0:
        return "empty (0 bytes; not fetched?)"
    if path.suffix.lower() == ".vhdr":
        text = path.read_text(encoding="utf-8", errors="replace")
        for key in ("DataFile", "MarkerFile"):
            m = re.search(rf"^{key}=(.+?)\s*$", text, flags=re.MULTILINE)
            if m is not None:
                why = unusable(path.parent / m.group(1))
                if why is not None and why != "missing":
                    return f"its {key} {m.group(1)} is {why}"
    return None


def load_layout(bids_dir: str | os.PathLike, database_dir: str | os.PathLike | None = None):
    """Open a pybids ``BIDSLayout`` on a raw dataset, keeping ``eeg/`` in the index.

    Parameters
    ----------
    bids_dir
        The raw BIDS dataset (read only; nothing is written inside it).
    database_dir
        Optional folder for pybids' SQLite index. An existing index is reused as is, which makes
        large datasets start quickly; delete the folder after the dataset changes.

    Returns
    -------
    bids.layout.BIDSLayout
    """
    from bids.layout import BIDSLayout, BIDSLayoutIndexer

    indexer = BIDSLayoutIndexer(validate=False, ignore=list(IGNORE))
    kwargs: dict[str, Any] = {"validate": False, "indexer": indexer}
    if database_dir is not None:
        kwargs["database_path"] = os.fspath(database_dir)
    try:
        return BIDSLayout(os.fspath(bids_dir), **kwargs)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot index the dataset: {exc}", ExitCode.NO_INPUT, bids_dir) from None


def load_filters(path: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """Read a ``--bids-filter-file``: ``{"bold": {...}, "eeg": {...}, "t1w": {...}}`` entity queries.

    Raises
    ------
    UsageError
        When the file is missing, not JSON, or has keys other than bold/eeg/t1w.
    """
    if path is None:
        return {}
    try:
        filters = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError("filter file not found", path) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"filter file is not valid JSON: {exc}", path) from None
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError("filter file must map 'bold'/'eeg'/'t1w' to entity queries", path)
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise UsageError(f"unknown filter keys {sorted(unknown)}; allowed: {list(FILTER_KEYS)}", path)
    return filters


def collect_participants(layout, *, participant_label: list[str] | None = None,
                         session_label: list[str] | None = None,
                         task_label: list[str] | None = None,
                         filters: dict[str, dict[str, Any]] | None = None) -> list[ParticipantPlan]:
    """Select runs, read their metadata and pair BOLD with EEG.

    Parameters
    ----------
    layout
        From :func:`load_layout`.
    participant_label, session_label, task_label
        Bare labels (no ``sub-`` prefix); empty or ``None`` selects all.
    filters
        Extra pybids queries per modality (from :func:`load_filters`).

    Returns
    -------
    list of ParticipantPlan
        One per selected participant with at least one run, sorted by label.

    Raises
    ------
    UserError
        Exit 18 when a label is not in the dataset or the selection is empty; exit 65 when a
        selected file is unusable (the message names it); exit 66 when no selected run has its
        data files (all unfetched). Runs with unfetched data files (broken DataLad symlinks,
        0 bytes) are skipped with a warning and listed in ``ParticipantPlan.skipped``; macOS
        ``._*`` files are ignored with a warning.
    """
    filters = filters or {}
    subjects = layout.get_subjects()
    if participant_label:
        missing = [s for s in participant_label if s not in subjects]
        if missing:
            raise UserError(f"participant label(s) {', '.join('sub-' + m for m in missing)} not found; "
                            f"the dataset has {', '.join('sub-' + s for s in subjects) or 'none'}",
                            ExitCode.NO_DATA_SELECTED, layout.root)
    base: dict[str, Any] = {"subject": participant_label or subjects}
    if session_label:
        base["session"] = session_label
    if task_label:
        base["task"] = task_label

    bold_files = layout.get(**{**base, "datatype": "func", "suffix": "bold",
                               "extension": list(BOLD_EXTENSIONS), **filters.get("bold", {})})
    eeg_files = layout.get(**{**base, "datatype": "eeg", "suffix": "eeg",
                              "extension": list(EEG_FORMATS), **filters.get("eeg", {})})
    pairs: dict[tuple, RunPair] = {}
    skipped: dict[tuple, tuple[dict, str]] = {}
    for files, kind in ((bold_files, "bold"), (eeg_files, "eeg")):
        for f in files:
            ents = _pair_entities(f.get_entities())
            why = unusable(f.path)
            if Path(f.path).name.startswith("._"):
                continue  # warned below with the other ._* files of its folder
            if why is not None:
                prev = skipped.get(_key(ents), (ents, ""))[1]
                skipped[_key(ents)] = (ents, "; ".join(filter(None, [
                    prev, f"{Path(f.path).name}: {why}"])))
                continue
            pair = pairs.setdefault(_key(ents), RunPair(ents))
            if kind == "bold":
                pair.bold = read_bold_run(f.path, layout)
            elif pair.eeg is not None:
                raise DataError(f"two EEG recordings for the same run ({pair.eeg.path.name})",
                                f.path)
            else:
                pair.eeg = read_eeg_run(f.path, layout)
    for key, (ents, why) in skipped.items():
        pairs.pop(key, None)
        log.warning("run %s skipped: %s", RunPair(ents).name, why)
    # The index never lists macOS ._* files (IGNORE); say once each that they are left out.
    for folder in sorted({Path(f.path).parent for f in [*bold_files, *eeg_files]}):
        for junk in sorted(folder.glob("._*")):
            log.warning("%s: macOS metadata file (._*); ignored", junk)
    if not pairs and not skipped:
        raise UserError("the selection matched no BOLD or EEG run "
                        f"(subjects {base['subject']}, sessions {session_label or 'all'}, "
                        f"tasks {task_label or 'all'})", ExitCode.NO_DATA_SELECTED, layout.root)

    plans = []
    subjects_found = {p.entities["subject"] for p in pairs.values()}
    subjects_found |= {ents["subject"] for ents, _ in skipped.values()}
    for sub in sorted(subjects_found):
        runs = sorted((p for p in pairs.values() if p.entities["subject"] == sub), key=lambda p: p.name)
        t1w = []
        for f in layout.get(subject=sub, datatype="anat", suffix="T1w",
                            extension=list(BOLD_EXTENSIONS), **filters.get("t1w", {})):
            why = unusable(f.path)
            if why is not None:
                # Kept in the plan: with --use-t1w the start-up checks refuse it (exit 65).
                log.warning("%s: %s; ignored unless --use-t1w", f.path, why)
            t1w.append(Path(f.path))
        gone = {RunPair(ents).name: why for ents, why in skipped.values()
                if ents["subject"] == sub}
        plans.append(ParticipantPlan(sub, runs, t1w, gone))
    if not any(p.pairs for p in plans):
        names = "; ".join(f"{n} ({w})" for p in plans for n, w in p.skipped.items())
        raise UserError(f"no selected run has its data files: {names}", ExitCode.NO_INPUT,
                        layout.root)
    return plans


def _pair_entities(entities: dict[str, Any]) -> dict[str, Any]:
    return {k: entities[k] for k in PAIR_ENTITIES if entities.get(k) is not None}


def _key(entities: dict[str, Any]) -> str:
    return run_key(entities)


def read_bold_run(path: str | os.PathLike, layout=None) -> BoldRun:
    """Check a BOLD file and read the metadata the fMRI stages need.

    Parameters
    ----------
    path
        The NIfTI series.
    layout
        A BIDSLayout for inherited sidecar metadata; without it only the file's own sidecar is read.

    Returns
    -------
    BoldRun

    Raises
    ------
    DataError
        When the file is not a complete 4-D NIfTI, or RepetitionTime/SliceTiming are missing,
        non-positive or inconsistent with the image.
    """
    path = Path(path)
    meta = _metadata(path, layout)
    img_info = check_nifti(path)
    if len(img_info.shape) != 4 or img_info.shape[3] < 2:
        raise DataError(f"BOLD must be a 4-D series, image shape is {img_info.shape}", path)
    tr = meta.get("RepetitionTime")
    if tr is None:
        raise DataError("RepetitionTime is missing from the sidecar", path)
    if not isinstance(tr, (int, float)) or isinstance(tr, bool) or not tr > 0:
        raise DataError(f"RepetitionTime must be a positive number of seconds, got {tr!r}", path)
    sed = meta.get("SliceEncodingDirection", "k")
    if sed not in ("i", "j", "k", "i-", "j-", "k-"):
        raise DataError(f"SliceEncodingDirection must be one of i, j, k (optionally with -), got {sed!r}",
                        path)
    header_tr = img_info.zooms[3] if len(img_info.zooms) > 3 else 0.0
    if header_tr > 50 * tr:  # xyzt_units in milliseconds
        header_tr /= 1000.0
    if header_tr > 0 and abs(header_tr - tr) > TR_RTOL * tr:
        log.warning("%s: the NIfTI header says TR %g s (pixdim[4]) but RepetitionTime is %g s; "
                    "the sidecar's RepetitionTime is used", path, header_tr, tr)
    st = meta.get("SliceTiming")  # None: the fMRI stage skips slice timing with a warning
    if st is not None:
        n_slices = img_info.shape["ijk".index(sed[0])]
        if (not isinstance(st, list) or not all(isinstance(t, (int, float)) for t in st)):
            raise DataError("SliceTiming must be a list of numbers", path)
        if len(st) != n_slices:
            raise DataError(f"SliceTiming has {len(st)} entries but the image has {n_slices} slices "
                            f"along {sed}", path)
        if min(st) < 0 or max(st) >= tr:
            raise DataError(f"SliceTiming values must lie in [0, RepetitionTime={tr}); "
                            f"found {min(st)}..{max(st)}", path)
    ents = layout.get_file(os.fspath(path)).get_entities() if layout is not None else {}
    return BoldRun(path, ents, float(tr), img_info.shape, img_info.zooms,
                   [float(t) for t in st] if st is not None else None, sed, meta)


def read_eeg_run(path: str | os.PathLike, layout=None) -> EEGRun:
    """Check an EEG recording's companion files and read its sidecar metadata.

    Raises
    ------
    DataError
        When the format is unsupported or a file the header points to is missing.
    """
    path = Path(path)
    ext = "".join(path.suffixes[-1:]).lower()
    if ext not in EEG_FORMATS:
        raise DataError(f"unsupported EEG format {ext!r}; supported: {', '.join(EEG_FORMATS)}", path)
    meta = _metadata(path, layout)
    if ext == ".vhdr":
        _check_brainvision(path)
    if not path.exists() or path.stat().st_size == 0:
        raise DataError("EEG file is missing or empty", path)
    sfreq = meta.get("SamplingFrequency")
    if sfreq is not None and (not isinstance(sfreq, (int, float)) or sfreq <= 0):
        raise DataError(f"SamplingFrequency must be a positive number, got {sfreq!r}", path)
    if sfreq is None and ext == ".vhdr":
        sfreq = _brainvision_sfreq(path)  # no _eeg.json (ds003768): the header says it
    ents = layout.get_file(os.fspath(path)).get_entities() if layout is not None else {}
    return EEGRun(path, ents, EEG_FORMATS[ext], float(sfreq) if sfreq else None, meta)


def _brainvision_sfreq(vhdr: Path) -> float | None:
    """Sampling rate from a BrainVision header's ``SamplingInterval`` (microseconds)."""
    text = vhdr.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"^SamplingInterval=([0-9.eE+-]+)\s*$", text, flags=re.MULTILINE)
    try:
        return 1e6 / float(m.group(1)) if m else None
    except (ValueError, ZeroDivisionError):
        return None


def _check_brainvision(vhdr: Path) -> None:
    """BrainVision headers name their data and marker files; both must exist beside the header."""
    try:
        text = vhdr.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read BrainVision header: {exc.strerror}", vhdr) from None
    for key in ("DataFile", "MarkerFile"):
        m = re.search(rf"^{key}=(.+?)\s*$", text, flags=re.MULTILINE)
        if m is None:
            if key == "DataFile":
                raise DataError("BrainVision header names no DataFile", vhdr)
            continue
        if not (vhdr.parent / m.group(1)).exists():
            raise DataError(f"BrainVision {key} {m.group(1)!r} named in the header does not exist", vhdr)


def _metadata(path: Path, layout) -> dict[str, Any]:
    if layout is not None:
        try:
            return dict(layout.get_metadata(os.fspath(path)))
        except json.JSONDecodeError as exc:
            raise DataError(f"a sidecar of this file is not valid JSON: {exc}", path) from None
    sidecar = path.with_name(path.name.split(".")[0] + ".json")
    if not sidecar.exists():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"sidecar is not valid JSON: {exc}", sidecar) from None


def format_plan(plans: list[ParticipantPlan]) -> str:
    """Render the participant plan as a plain-text table for the terminal."""
    lines = []
    for plan in plans:
        counts = {k: sum(p.kind == k for p in plan.pairs) for k in ("paired", "eeg-only", "bold-only")}
        lines.append(f"sub-{plan.subject}: {counts['paired']} paired, {counts['eeg-only']} EEG-only, "
                     f"{counts['bold-only']} BOLD-only run(s); T1w: {len(plan.t1w)}")
        for p in plan.pairs:
            parts = [f"  {p.name:<40s} {p.kind:<9s}"]
            if p.bold is not None:
                b = p.bold
                st = "slice timing" if b.slice_timing else "no slice timing"
                parts.append(f"BOLD {'x'.join(map(str, b.shape))} TR={b.repetition_time:g}s {st}")
            if p.eeg is not None:
                e = p.eeg
                fs = f"{e.sampling_frequency:g} Hz" if e.sampling_frequency else "? Hz"
                parts.append(f"EEG {e.format} {fs}")
            lines.append("  ".join(parts))
        for name, why in plan.skipped.items():
            lines.append(f"  {name:<40s} {'skipped':<9s}  {why}")
    return "\n".join(lines)
