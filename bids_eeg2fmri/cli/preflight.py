"""Start-up checks that need the selected runs: readable inputs, distinct EEG channel names and a
usable ``--model-dir``.

Everything here runs before the first pipeline step, so a run that cannot succeed fails in
seconds with one line instead of after hours of preprocessing.
"""

from __future__ import annotations

import math
import os
from collections import Counter
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


def check_channel_names(eeg_file: Path) -> None:
    """Refuse an EEG recording whose channel names repeat, naming the duplicates (exit 65).

    The names are read from the BIDS ``_channels.tsv`` beside the recording and, for
    BrainVision, from the header's ``[Channel Infos]``; readers rename duplicates (``Fp1-0``)
    and then fail far from the cause.
    """
    eeg_file = Path(eeg_file)
    stem = eeg_file.name.rsplit("_eeg.", 1)[0]
    sources: list[tuple[Path, list[str]]] = []
    tsv = eeg_file.with_name(f"{stem}_channels.tsv")
    if tsv.is_file():
        rows = [line.split("\t") for line in tsv.read_text(errors="replace").splitlines() if line]
        if rows and "name" in rows[0]:
            col = rows[0].index("name")
            sources.append((tsv, [r[col] for r in rows[1:] if len(r) > col]))
    if eeg_file.suffix.lower() == ".vhdr":
        sources.append((eeg_file, _vhdr_channel_names(eeg_file)))
    for path, names in sources:
        counts = Counter(names)
        dups = [f"{name} (×{n})" for name, n in counts.items() if n > 1]
        if dups:
            raise DataError(f"duplicate channel names {', '.join(dups)}; every channel needs a "
                            "name of its own", path=path)


def _vhdr_channel_names(vhdr: Path) -> list[str]:
    names, section = [], ""
    for line in vhdr.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.lower()
        elif section == "[channel infos]" and line.lower().startswith("ch") and "=" in line:
            names.append(line.split("=", 1)[1].split(",", 1)[0].replace("\\1", ","))
    return names


def check_inputs(plans: list[ParticipantPlan], use_t1w: bool) -> None:
    """Every input readable (:func:`check_readable`), every EEG's channel names distinct."""
    check_readable(input_files(plans, use_t1w))
    for plan in plans:
        for pair in plan.pairs:
            if pair.eeg is not None:
                check_channel_names(pair.eeg.path)


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
    from ..apply.classify import check_classifier_dir, is_classifier_folder
    from ..group import card as C
    from ..modelfiles import read_model_file

    if is_classifier_folder(model_dir):
        return check_classifier_dir(model_dir, plans)
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
