"""Start-up checks that need the selected runs: readable inputs and a usable ``--model-dir``.

Everything here runs before the first pipeline step, so a run that cannot succeed fails in
seconds with one line instead of after hours of preprocessing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..bids.layout import ParticipantPlan
from ..errors import DataError


def check_readable(paths: Iterable[Path]) -> None:
    """Raise a one-line :class:`DataError` (exit 65) for the first input that cannot be read.

    A broken symbolic link (common in DataLad/git-annex datasets whose content was not fetched)
    is named as such, with its target.
    """
    for path in paths:
        path = Path(path)
        if path.is_symlink() and not path.exists():
            raise DataError(f"broken symbolic link (points to {os.readlink(path)}); fetch the "
                            "file's content or remove the link", path=path)
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise DataError(f"cannot read the input file: {exc.strerror}", path=path) from None


def input_files(plans: list[ParticipantPlan], use_t1w: bool) -> list[Path]:
    """The data files the participant level will read (T1w images only with ``--use-t1w``)."""
    files = [run.path for plan in plans for pair in plan.pairs
             for run in (pair.bold, pair.eeg) if run is not None]
    return files + ([t1w for plan in plans for t1w in plan.t1w] if use_t1w else [])


def check_model_dir(model_dir: Path, plans: list[ParticipantPlan]) -> dict[str, Any]:
    """Check a ``--model-dir`` completely before any preprocessing and return its card.

    The card is read, every file it lists is checked against its SHA-256, the weights are parsed
    (as data: see :mod:`bids_eeg2fmri.modelfiles`), and the selection must hold the modality the
    model reads (EEG for an EEG→fMRI model, BOLD for fMRI→EEG) with the model's repetition time
    where the BOLD runs state one.

    Raises
    ------
    DataError
        With one line naming the folder or file (exit 65).
    """
    from ..group import card as C
    from ..modelfiles import read_model_file

    card = C.read_card(model_dir)
    C.read_labels(model_dir)
    read_model_file(model_dir / C.MODEL_FILE, card["Files"][C.MODEL_FILE])
    direction = card["Direction"]
    pairs = [pair for plan in plans for pair in plan.pairs]
    needs = "eeg" if direction == "eeg2fmri" else "bold"
    if not any(getattr(pair, needs) is not None for pair in pairs):
        raise DataError(f"the {direction} model reads {needs.upper()}, but the selected runs have "
                        "none", path=model_dir)
    tr = (card.get("Data") or {}).get("RepetitionTime")
    if direction == "fmri2eeg" and tr:
        wrong = [pair.bold for pair in pairs if pair.bold is not None
                 and not math.isclose(pair.bold.repetition_time, float(tr), rel_tol=1e-3)]
        if wrong:
            raise DataError(f"repetition time {wrong[0].repetition_time} s differs from the "
                            f"model's {tr} s ({model_dir})", path=wrong[0].path)
    return card
