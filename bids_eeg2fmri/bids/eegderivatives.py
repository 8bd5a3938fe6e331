"""Finding already-corrected EEG (``--eeg-derivatives``) in the layouts real studies publish.

Public EEG-fMRI datasets ship gradient/BCG-corrected EEG in many shapes: a BIDS derivative
dataset (``sub-01/eeg/sub-01_task-rest_desc-bcg_eeg.vhdr``), a pipeline subfolder of
``derivatives/`` (``derivatives/eegprep/sub-02/ses-001/eeg/sub-02_ses-001_task-main_eeg_preproc.set``,
ds002158), non-BIDS suffixes, prefixes and folders (``derivatives/sub-xp201/eeg_pp/
d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr``, ds002338), often without ``dataset_description.json``.
Every recording file under the folder is a candidate; its ``sub``/``ses``/``task``/``acq``/``run``
entities are read wherever they appear in its name (or, failing that, its folders) and compared
with the raw run's. A run with no corrected export falls back to its raw EEG with a warning; an
export that lacks ``run-`` while the raw task has several runs (a concatenation) is not used.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, ExitCode, UserError

log = logging.getLogger("bids_eeg2fmri.eeg")

# Recording formats a corrected export comes in (EEGLAB .set, BrainVision header, EDF/BDF, FIF).
RECORDING_EXTENSIONS = (".vhdr", ".set", ".edf", ".bdf", ".fif")
# Entities that identify the acquisition; a derivative must agree on all of those the raw has.
MATCH_ENTITIES = ("sub", "ses", "task", "acq", "run")
_ENTITY = re.compile(r"(?:^|[_\W])(sub|ses|task|acq|run)-([A-Za-z0-9]+)")
# A name mne-bids can read with its sidecars: sub-…_…_eeg.<ext>
_BIDS_EEG_NAME = re.compile(r"^sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*_eeg\.(vhdr|set|edf|bdf|fif)$")


def name_entities(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict[str, str]:
    """``sub``/``ses``/``task``/``acq``/``run`` of a file, from its name, else from its folders.

    Unlike :func:`~bids_eeg2fmri.bids.derivatives.parse_entities` this reads non-BIDS names
    (``d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr``). Folders are read only below ``root``.
    """
    path = Path(path)
    found = dict(_ENTITY.findall(path.name.split(".")[0]))
    parents = path.parent.relative_to(root).parts if root is not None else ()
    for folder in parents[::-1]:
        for key, value in _ENTITY.findall(folder):
            found.setdefault(key, value)
    return found


def is_bids_eeg_name(path: str | os.PathLike) -> bool:
    """True for ``sub-…_eeg.<ext>`` names (read with mne-bids and their sidecars)."""
    return bool(_BIDS_EEG_NAME.match(Path(path).name))


def same_entity(key: str, a: str, b: str) -> bool:
    """Equal entity values; ``run-01`` and ``run-1`` are the same run (BIDS run is an index)."""
    if key == "run" and a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a == b


def files_under(folder: Path, endings: tuple[str, ...] = RECORDING_EXTENSIONS) -> tuple[Path, ...]:
    """Every file under ``folder`` whose name ends with one of ``endings`` (macOS ``._*`` and
    hidden files and folders left out), in a stable order."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(endings):
                continue
            out.append(Path(root) / name)
    return tuple(out)


@dataclass
class Match:
    """The corrected export found for a raw run, or why none is used."""

    path: Path | None
    reason: str = ""


def match_corrected_eeg(source: str | os.PathLike, folder: str | os.PathLike,
                        raw_runs: Iterable[str | os.PathLike] | None = None) -> Match:
    """Find the corrected export of one raw EEG run.

    Parameters
    ----------
    source
        The raw ``*_eeg.<ext>`` file of the run.
    folder
        ``--eeg-derivatives`` (absolute).
    raw_runs
        The raw EEG files of the dataset (default: ``source``'s folder), to tell whether an export
        that lacks ``run-`` covers one run or several.

    Returns
    -------
    Match
        ``path`` is ``None`` when the run has no usable export; ``reason`` then says why.

    Raises
    ------
    DataError
        When several exports match the run (naming them).
    """
    folder = Path(folder)
    want = {k: v for k, v in name_entities(source).items() if k in MATCH_ENTITIES}
    exact, partial = [], []
    raw_file = Path(source).resolve()
    for cand in files_under(folder):
        if cand.resolve() == raw_file:  # the folder may hold the raw dataset too
            continue
        ents = name_entities(cand, folder)
        if ents.get("sub") != want.get("sub"):
            continue
        if any(k not in want for k in ents if k in MATCH_ENTITIES):
            continue
        if not all(same_entity(k, ents[k], v) for k, v in want.items() if k in ents):
            continue
        (exact if all(k in ents for k in want) else partial).append((cand, ents))
    if len(exact) > 1:
        names = ", ".join(sorted(str(c.relative_to(folder)) for c, _ in exact))
        raise DataError(f"several corrected EEG files match {Path(source).name}: {names}", folder)
    if exact:
        return Match(exact[0][0])
    if not partial:
        return Match(None, "no corrected export")
    if len(partial) > 1:
        names = ", ".join(sorted(str(c.relative_to(folder)) for c, _ in partial))
        raise DataError(f"several corrected EEG files match {Path(source).name}: {names}", folder)
    cand, ents = partial[0]
    lacking = [k for k in want if k not in ents]
    siblings = [p for p in (raw_runs if raw_runs is not None else
                            Path(source).parent.glob(f"*_eeg{Path(source).suffix}"))
                if all(same_entity(k, name_entities(p).get(k, ""), v)
                       for k, v in want.items() if k not in lacking)]
    if len(siblings) > 1:
        return Match(None, f"{cand.name} has no {'/'.join(k + '-' for k in lacking)} entity and "
                           f"matches {len(siblings)} raw runs (a concatenation cannot be split "
                           "into runs)")
    return Match(cand)


def warn_fallback(source: str | os.PathLike, reason: str, folder: str | os.PathLike) -> None:
    """Say that a run uses its raw EEG because ``--eeg-derivatives`` has no usable export."""
    log.warning("%s: %s in --eeg-derivatives %s; using the raw EEG with this app's own "
                "gradient/BCG correction", Path(source).name, reason, folder)


def check_eeg_derivatives(folder: Path, sources: list[Path]) -> dict[Path, Path | None]:
    """Start-up check of ``--eeg-derivatives``: every run's export, before any processing.

    Parameters
    ----------
    folder
        The resolved ``--eeg-derivatives`` folder.
    sources
        The raw EEG files of the selected runs.

    Returns
    -------
    dict
        Raw file → its export, or ``None`` for runs that fall back to their raw EEG (warned).

    Raises
    ------
    UserError
        Exit 66 when the folder holds no recording file at all, or none for any selected run;
        exit 65 (:class:`DataError`) when several exports match one run.
    """
    if not files_under(folder):
        raise UserError("--eeg-derivatives holds no EEG recording "
                        f"({', '.join(RECORDING_EXTENSIONS)})", ExitCode.NO_INPUT, folder)
    found = {}
    for src in sources:
        m = match_corrected_eeg(src, folder, sources)
        found[src] = m.path
        if m.path is None:
            warn_fallback(src, m.reason, folder)
    if sources and not any(found.values()):
        raise UserError("no corrected EEG in --eeg-derivatives matches any selected run (by "
                        "sub/ses/task/acq/run)", ExitCode.NO_INPUT, folder)
    return found
