"""Index the participant level's derivatives by source run (what the group level and
``--model-dir`` read): spectrogram, preprocessed and model-ready BOLD, brain mask, confounds."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bids.derivatives import SOURCE_ENTITIES, parse_entities
from ..bids.runkey import run_entities, run_key
from ..errors import DataError, ExitCode, UserError

SPACE = "MNI152NLin2009aSym"


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


