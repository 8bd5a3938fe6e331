"""Reading EEG recordings through mne-bids, and choosing between raw and derivative EEG.

``mne_bids.read_raw_bids`` gives channel types from ``channels.tsv`` (EEG, ECG, EOG, MISC), bad
channels from its ``status`` column, the montage from ``electrodes.tsv`` + ``coordsystem.json`` and
annotations from ``events.tsv`` — all of which the later stages rely on.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mne
import numpy as np

from ..bids.derivatives import parse_entities
from ..errors import DataError

EEG_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif")
# Entities that identify the acquisition; a derivative must agree on all of those the raw has.
MATCH_ENTITIES = ("sub", "ses", "task", "acq", "run")


def read_eeg(path: str | os.PathLike) -> mne.io.BaseRaw:
    """Read and preload a BIDS EEG recording with ``mne_bids.read_raw_bids``.

    Parameters
    ----------
    path
        The ``*_eeg.<ext>`` file inside a BIDS (raw or derivative) tree.

    Returns
    -------
    mne.io.BaseRaw
        Preloaded, channel types and montage from the sidecars, annotations from events.tsv.

    Raises
    ------
    DataError
        When the file cannot be read.
    """
    from mne_bids import get_bids_path_from_fname, read_raw_bids

    path = Path(path)
    if not path.exists():
        raise DataError("EEG file does not exist", path)
    try:
        bids_path = get_bids_path_from_fname(path, check=False, verbose=False)
        with mne.utils.use_log_level("ERROR"):
            with warnings.catch_warnings():
                # mne-bids warns about every optional sidecar field it does not find
                warnings.simplefilter("ignore", RuntimeWarning)
                raw = read_raw_bids(bids_path, verbose=False)
            raw.load_data(verbose=False)
    except DataError:
        raise
    except Exception as exc:  # readers raise many types for malformed files
        raise DataError(f"cannot read EEG: {type(exc).__name__}: {exc}", path) from None
    if raw.n_times < 2:
        raise DataError("EEG recording holds no samples", path)
    if not mne.pick_types(raw.info, eeg=True, exclude=()).size:
        raise DataError("EEG recording has no channel of type EEG (see channels.tsv)", path)
    data = raw._data
    if not np.isfinite(data).all():
        raise DataError("EEG recording contains NaN or infinite samples", path)
    return raw


def find_derivative_eeg(source: str | os.PathLike, derivatives: str | os.PathLike,
                        bids_dir: str | os.PathLike | None = None) -> Path:
    """Find the EEG file in a derivatives folder that matches a raw EEG file's entities.

    Parameters
    ----------
    source
        The raw ``*_eeg.<ext>`` file of the run.
    derivatives
        ``--eeg-derivatives``: a folder (absolute, or relative to ``bids_dir``) holding cleaned EEG
        in a BIDS-like tree (``sub-XX/[ses-YY/]eeg/*_eeg.<ext>``), e.g. BrainVision Analyzer exports.
    bids_dir
        The raw dataset, to resolve a relative ``derivatives``.

    Returns
    -------
    pathlib.Path
        The single matching file.

    Raises
    ------
    DataError
        When no file, or more than one, matches.
    """
    folder = Path(derivatives)
    if not folder.is_absolute() and bids_dir is not None and not folder.exists():
        folder = Path(bids_dir) / folder
    if not folder.is_dir():
        raise DataError("--eeg-derivatives folder does not exist", folder)
    want = {k: v for k, v in parse_entities(source).items() if k in MATCH_ENTITIES}
    hits = []
    for ext in EEG_EXTENSIONS:
        for cand in folder.rglob(f"sub-{want['sub']}*_eeg{ext}"):
            ents = parse_entities(cand)
            if all(ents.get(k) == v for k, v in want.items()) and \
                    all(k in want for k in MATCH_ENTITIES if k in ents):
                hits.append(cand)
    if not hits:
        raise DataError(f"no EEG in --eeg-derivatives matches {Path(source).name}", folder)
    if len(hits) > 1:
        names = ", ".join(sorted(h.name for h in hits))
        raise DataError(f"several EEG files in --eeg-derivatives match {Path(source).name}: "
                        f"{names}", folder)
    return hits[0]
