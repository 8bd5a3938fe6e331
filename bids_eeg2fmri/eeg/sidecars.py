"""The sidecars of an EEG recording as published datasets really write them.

Real datasets inherit task-level sidecars from the top of the tree (``task-X_channels.tsv``),
leave them out (ds003768 has no ``_eeg.json``, ``channels.tsv`` or ``events.tsv``) or write them
by hand: space-separated with quoted names (ds002338's ``channels.tsv``), trailing tabs on some
rows (its ``events.tsv``). This module finds every sidecar that applies to a recording (the BIDS
inheritance principle), reads tables leniently, and digests them so that a node reading them
re-runs when one is edited.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("bids_eeg2fmri.eeg")

#: Sidecar suffixes an EEG node reads (channel types and bads, paradigm events, positions).
EEG_SIDECARS = ("_eeg.json", "_channels.tsv", "_events.tsv", "_electrodes.tsv",
                "_coordsystem.json")
#: Electrode names of an ECG lead: ECG, EKG, ECG1, EKG_2, "ECG chest"…
ECG_NAME = re.compile(r"^(ecg|ekg)([\s_\-]*\w*)?$", re.IGNORECASE)
#: BIDS channel types → MNE channel types.
BIDS_TO_MNE = {"EEG": "eeg", "ECG": "ecg", "EKG": "ecg", "EOG": "eog", "HEOG": "eog",
               "VEOG": "eog", "EMG": "emg", "MISC": "misc", "TRIG": "stim", "RESP": "resp",
               "GSR": "gsr", "PPG": "bio", "TEMP": "temperature", "SYSCLOCK": "syst",
               "REF": "eeg"}
_QUOTES = "'\"\u2018\u2019\u201c\u201d"


def _entities(name: str) -> tuple[dict[str, str], str]:
    """Entities and the ``_suffix.ext`` tail of a file name."""
    stem, _, _ = name.partition(".")
    parts = stem.split("_")
    ents = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return ents, "_" + parts[-1] + name[len(stem):]


def find_sidecars(data_file: str | os.PathLike, root: str | os.PathLike | None = None,
                  suffixes: tuple[str, ...] = EEG_SIDECARS) -> list[Path]:
    """Every sidecar that applies to ``data_file`` under the BIDS inheritance principle.

    A file applies when it lies in the data file's folder or one above it (up to ``root``, the
    dataset root: the first folder above holding ``dataset_description.json`` when not given),
    ends with one of ``suffixes`` and its entities are a subset of the data file's. The list runs
    from the most general (top level) to the most specific file.
    """
    data_file = Path(data_file)
    want, _ = _entities(data_file.name)
    folder = data_file.parent
    if root is None:
        root = next((p for p in [folder, *folder.parents]
                     if (p / "dataset_description.json").is_file()), folder)
    root = Path(root)
    found: list[Path] = []
    while True:
        level = []
        for cand in sorted(folder.glob("*")):
            if cand.name.startswith(".") or not cand.name.endswith(suffixes) or cand == data_file:
                continue
            ents, _ = _entities(cand.name)
            if ents and all(want.get(k) == v for k, v in ents.items()):
                level.append(cand)
        found[:0] = sorted(level, key=lambda p: len(_entities(p.name)[0]))
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return found


def applicable(sidecars: list[Path], suffix: str) -> Path | None:
    """The most specific sidecar with ``suffix`` (the one inheritance says wins)."""
    hits = [p for p in sidecars if p.name.endswith(suffix)]
    return hits[-1] if hits else None


@dataclass
class Table:
    """A TSV read leniently: column names, rows as dicts and what was wrong with the file."""

    columns: list[str]
    rows: list[dict[str, str]]
    problems: list[str] = field(default_factory=list)


def read_tsv(path: str | os.PathLike) -> Table:
    """Read a BIDS TSV, accepting what hand-written files do wrong.

    Space-separated columns (when a line has no tab), quoted values (straight or typographic
    quotes), trailing tabs and blank lines are accepted; each kind of deviation is named once in
    ``problems``.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    problems: list[str] = []
    if not lines:
        return Table([], [], ["empty file"])
    if "\t" not in lines[0]:
        problems.append("columns are separated by spaces, not tabs")
        split = str.split
    else:
        def split(line: str) -> list[str]:
            return line.split("\t")
    header = [c.strip() for c in split(lines[0])]
    rows = []
    ragged = quoted = False
    for line in lines[1:]:
        cells = split(line)
        while len(cells) > len(header) and not cells[-1].strip():
            cells.pop()
            ragged = True
        clean = [c.strip().strip(_QUOTES) for c in cells]
        quoted |= any(c.strip() != s and c.strip()[:1] in _QUOTES for c, s in zip(cells, clean))
        rows.append(dict(zip(header, clean + ["n/a"] * (len(header) - len(clean)))))
    if ragged:
        problems.append("some rows end with extra tabs")
    if quoted:
        problems.append("values are quoted")
    return Table(header, rows, problems)


def sidecar_problems(sidecars: list[Path]) -> dict[Path, list[str]]:
    """The TSV sidecars that a strict reader (mne-bids) would refuse, with what is wrong."""
    out = {}
    for p in sidecars:
        if p.suffix == ".tsv":
            problems = read_tsv(p).problems
            if problems:
                out[p] = problems
    return out


def channel_types(table: Table) -> tuple[dict[str, str], list[str]]:
    """MNE channel types by name and the bad channels (``status`` = bad) of a channels table."""
    types, bads = {}, []
    for row in table.rows:
        name = row.get("name", "")
        kind = BIDS_TO_MNE.get(row.get("type", "").upper())
        if name and kind:
            types[name] = kind
        if name and row.get("status", "").lower() == "bad":
            bads.append(name)
    return types, bads


def ecg_by_name(names: list[str]) -> list[str]:
    """Channel names that denote an ECG lead."""
    return [n for n in names if ECG_NAME.match(n.strip())]


def digest(paths: list[str | os.PathLike]) -> str:
    """SHA-256 over the names and contents of ``paths`` (a node's cache key for its sidecars)."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(os.fspath(p).encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()


def recording_files(path: str | os.PathLike) -> list[Path]:
    """The files a recording's header names beside it (BrainVision marker file; EEGLAB ``.fdt``)."""
    path = Path(path)
    out = []
    if path.suffix.lower() == ".vhdr" and path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"^MarkerFile=(.+?)\s*$", text, flags=re.MULTILINE)
        if m:
            out.append(path.parent / m.group(1))
    return out


def eeg_inputs_digest(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """Digest of every sidecar and marker file the EEG cleaning node reads for ``path``."""
    files = [*find_sidecars(path, root), *recording_files(path)]
    return digest(files)
