"""Finding a BOLD run's fMRIPrep outputs (``--fmri-derivatives``).

fMRIPrep writes, per BOLD run (with or without ``ses-``)::

    sub-01/[ses-1/]func/sub-01_[ses-1_]task-rest_[run-1_]space-MNI152NLin2009cAsym[_res-2]_desc-preproc_bold.nii.gz
                                                   …_space-MNI152NLin2009cAsym[_res-2]_desc-brain_mask.nii.gz
                                                   …_space-MNI152NLin2009cAsym[_res-2]_boldref.nii.gz
                                                   …_desc-confounds_timeseries.tsv   (…_regressors.tsv before 20.2)

The run's entities (sub/ses/task/acq/run) must equal the raw BOLD's; among the MNI spaces written,
:data:`SPACES` gives the preference, and among resolutions ``res-2``, then the native grid.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, ExitCode, UserError
from .derivatives import parse_entities
from .eegderivatives import MATCH_ENTITIES, files_under, name_entities, same_entity

log = logging.getLogger("bids_eeg2fmri")

# MNI spaces fMRIPrep writes, in order of preference (ours is MNI152NLin2009aSym).
SPACES = ("MNI152NLin2009cAsym", "MNI152NLin2009aSym", "MNI152NLin2009cSym", "MNI152NLin6Asym")
RES_PREFERENCE = ("2", None)


@dataclass
class FMRIPrepRun:
    """One run's fMRIPrep files."""

    bold: Path
    mask: Path
    confounds: Path
    boldref: Path | None
    space: str
    res: str | None

    def as_dict(self) -> dict[str, str | None]:
        """Plain strings, for node inputs."""
        return {"bold": os.fspath(self.bold), "mask": os.fspath(self.mask),
                "confounds": os.fspath(self.confounds),
                "boldref": None if self.boldref is None else os.fspath(self.boldref),
                "space": self.space, "res": self.res}


def _rank(ents: dict[str, str]) -> tuple[int, int]:
    res = ents.get("res")
    return (SPACES.index(ents["space"]),
            RES_PREFERENCE.index(res) if res in RES_PREFERENCE else len(RES_PREFERENCE))


def find_fmriprep_run(bold_file: str | os.PathLike, folder: str | os.PathLike) -> FMRIPrepRun | None:
    """The fMRIPrep outputs of one raw BOLD run, or ``None`` when fMRIPrep has none in MNI space.

    Raises
    ------
    DataError
        When the preprocessed BOLD is there but its brain mask or confounds are not (naming the
        missing file), or two files claim the same run, space and resolution.
    """
    folder = Path(folder)
    want = {k: v for k, v in name_entities(bold_file).items() if k in MATCH_ENTITIES}

    def same_run(path: Path) -> bool:
        ents = name_entities(path)
        return set(ents) == set(want) and all(same_entity(k, ents[k], v) for k, v in want.items())

    runs = [p for p in files_under(folder, ("_desc-preproc_bold.nii.gz", "_desc-preproc_bold.nii"))
            if same_run(p)]
    scored = []
    for p in runs:
        ents = parse_entities(p)
        if ents.get("space") in SPACES:
            scored.append((_rank(ents), p, ents))
    if not scored:
        return None
    scored.sort(key=lambda t: t[0])
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise DataError(f"several fMRIPrep BOLD files match {Path(bold_file).name}: "
                        f"{scored[0][1].name}, {scored[1][1].name}", folder)
    _, bold, ents = scored[0]
    prefix = bold.name[:bold.name.index("_desc-preproc_bold")]
    mask = bold.with_name(f"{prefix}_desc-brain_mask.nii.gz")
    if not mask.is_file():
        raise DataError(f"fMRIPrep BOLD {bold.name} has no {mask.name} beside it", folder)
    base = "_".join(f"{k}-{v}" for k, v in parse_entities(bold).items()
                    if k in MATCH_ENTITIES)
    confounds = next((bold.with_name(f"{base}_desc-confounds_{kind}.tsv")
                      for kind in ("timeseries", "regressors")
                      if bold.with_name(f"{base}_desc-confounds_{kind}.tsv").is_file()), None)
    if confounds is None:
        raise DataError(f"fMRIPrep BOLD {bold.name} has no {base}_desc-confounds_timeseries.tsv "
                        "beside it", folder)
    boldref = bold.with_name(f"{prefix}_boldref.nii.gz")
    return FMRIPrepRun(bold, mask, confounds, boldref if boldref.is_file() else None,
                       ents["space"], ents.get("res"))


def check_fmri_derivatives(folder: Path, bold_files: list[Path]) -> dict[Path, FMRIPrepRun | None]:
    """Start-up check of ``--fmri-derivatives``: every selected BOLD run's fMRIPrep outputs.

    Runs without them are preprocessed by this app (warned).

    Raises
    ------
    UserError
        Exit 66 when no selected run has fMRIPrep outputs in an MNI space.
    DataError
        A run's outputs are incomplete or ambiguous (:func:`find_fmriprep_run`).
    """
    found = {b: find_fmriprep_run(b, folder) for b in bold_files}
    for bold, hit in found.items():
        if hit is None:
            log.warning("%s: no fMRIPrep desc-preproc_bold in %s in --fmri-derivatives %s; "
                        "this app preprocesses the run itself", bold.name, "/".join(SPACES),
                        folder)
    if bold_files and not any(found.values()):
        raise UserError(f"no fMRIPrep desc-preproc_bold in an MNI space ({', '.join(SPACES)}) "
                        "matches any selected BOLD run", ExitCode.NO_INPUT, folder)
    return found
