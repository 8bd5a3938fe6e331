"""Finding a participant's derivatives (by role) and the raw files beside them, for its report."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


from ..bids.derivatives import SOURCE_ENTITIES, parse_entities, sidecar_path


# Which derivative plays which role in a run: (datatype, required entities, suffix, extensions).
_ROLES: dict[str, tuple[str, dict[str, str], str, tuple[str, ...]]] = {
    "boldref": ("func", {"space": "boldref"}, "boldref", (".nii.gz", ".nii")),
    "confounds": ("func", {"desc": "confounds"}, "timeseries", (".tsv",)),
    "preproc_bold": ("func", {"desc": "preproc"}, "bold", (".nii.gz", ".nii")),
    "brain_mask": ("func", {"desc": "brain"}, "mask", (".nii.gz", ".nii")),
    "mni_xfm": ("func", {"from": "boldref"}, "xfm", (".nii.gz", ".h5")),
    "model_bold": ("func", {"desc": "model"}, "bold", (".nii.gz", ".nii")),
    "synth_bold": ("func", {"desc": "synth"}, "bold", (".nii.gz", ".nii")),
    "preproc_eeg": ("eeg", {"desc": "preproc"}, "eeg", (".vhdr", ".fif")),
    "spectrogram": ("eeg", {"desc": "stft"}, "spectrogram", (".h5",)),
    "bandpower": ("eeg", {"desc": "bandpower"}, "timeseries", (".tsv",)),
    "synth_spectrogram": ("eeg", {"desc": "synth"}, "spectrogram", (".h5",)),
}




# ----------------------------------------------------------------------------- discovery
def subject_label(subject: str) -> str:
    label = str(subject)
    label = label[4:] if label.startswith("sub-") else label
    if not re.fullmatch(r"[A-Za-z0-9]+", label):
        raise ValueError(f"not a BIDS subject label: {subject!r}")
    return label


def _source_key(path: Path) -> str:
    ents = parse_entities(path)
    return "_".join(f"{k}-{ents[k]}" for k in SOURCE_ENTITIES if k in ents)


def find_run_files(out_dir: str | os.PathLike, subject: str) -> dict[str, dict[str, Path]]:
    """Derivative files of one participant, grouped by source run.

    Parameters
    ----------
    out_dir
        The derivatives dataset.
    subject
        Label with or without ``sub-``.

    Returns
    -------
    dict
        ``<src>`` (e.g. ``sub-01_task-rest_run-1``) → role → path, with roles ``boldref``,
        ``confounds``, ``preproc_bold``, ``brain_mask``, ``mni_xfm``, ``model_bold``,
        ``synth_bold``, ``preproc_eeg``, ``spectrogram``, ``bandpower``, ``synth_spectrogram``.
    """
    root = Path(out_dir) / f"sub-{subject_label(subject)}"
    runs: dict[str, dict[str, Path]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        datatype = path.parent.name
        ents = parse_entities(path)
        for role, (dtype, need, suffix, exts) in _ROLES.items():
            if datatype == dtype and ents["suffix"] == suffix and ents["extension"] in exts \
                    and all(ents.get(k) == v for k, v in need.items()):
                runs.setdefault(_source_key(path), {})[role] = path
    return dict(sorted(runs.items()))


def source_dataset(out_dir: Path) -> Path | None:
    """The raw dataset from ``SourceDatasets`` of ``dataset_description.json`` (file:// URL)."""
    desc = out_dir / "dataset_description.json"
    if not desc.exists():
        return None
    try:
        sources = json.loads(desc.read_text()).get("SourceDatasets") or []
    except json.JSONDecodeError:
        return None
    for src in sources:
        url = urlparse(str(src.get("URL", "")))
        if url.scheme == "file" and Path(unquote(url.path)).is_dir():
            return Path(unquote(url.path))
    return None


def raw_file(bids_dir: Path | None, key: str, datatype: str, suffix: str,
              sources: Sequence[str] = ()) -> Path | None:
    """Locate a run's raw file: a sidecar ``Sources`` entry, else a search in the raw dataset."""
    for s in sources:
        s = str(s)
        if s.startswith("bids:raw:") and bids_dir is not None:
            cand = bids_dir / s[len("bids:raw:"):]
        else:
            cand = Path(s)
        if cand.is_file():
            return cand
    if bids_dir is None:
        return None
    ents = dict(p.split("-", 1) for p in key.split("_"))
    folder = bids_dir / f"sub-{ents['sub']}"
    if "ses" in ents:
        folder = folder / f"ses-{ents['ses']}"
    for cand in sorted((folder / datatype).glob(f"{key}_{suffix}.*")):
        if cand.suffix not in (".json", ".tsv") and not cand.name.endswith((".vmrk", ".eeg")):
            return cand
    return None


def orphan_sidecar(out: Path, key: str, desc: str, suffix: str) -> dict[str, Any]:
    """The sidecar of a derivative whose data file is gone (users delete large 4-D series)."""
    ents = dict(part.split("-", 1) for part in key.split("_"))
    folder = out / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "")
    folder = folder / ("func" if suffix == "bold" else "eeg")
    for cand in sorted(folder.glob(f"{key}_*desc-{desc}_{suffix}.json")):
        try:
            return json.loads(cand.read_text())
        except json.JSONDecodeError:
            continue
    return {}


def read_sidecar(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    side = sidecar_path(path)
    try:
        return json.loads(side.read_text()) if side.exists() else {}
    except json.JSONDecodeError:
        return {}


