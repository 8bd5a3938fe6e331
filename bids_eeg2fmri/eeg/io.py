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

from ..bids.eegderivatives import is_bids_eeg_name, match_corrected_eeg, warn_fallback
from ..errors import DataError
from .exports import read_export


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
    if not is_bids_eeg_name(path):  # a corrected export named by its pipeline (--eeg-derivatives)
        return _checked(read_export(path), path)
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
    return _checked(raw, path)


def _checked(raw: mne.io.BaseRaw, path: Path) -> mne.io.BaseRaw:
    """``raw`` unless it is empty, has no EEG channel or holds non-finite samples."""
    if raw.n_times < 2:
        raise DataError("EEG recording holds no samples", path)
    if not mne.pick_types(raw.info, eeg=True, exclude=()).size:
        raise DataError("EEG recording has no channel of type EEG (see channels.tsv)", path)
    data = raw._data
    if not np.isfinite(data).all():
        raise DataError("EEG recording contains NaN or infinite samples", path)
    return raw


def find_derivative_eeg(source: str | os.PathLike, derivatives: str | os.PathLike) -> Path | None:
    """The corrected export of a raw EEG run in ``--eeg-derivatives``, or ``None`` (warned).

    Parameters
    ----------
    source
        The raw ``*_eeg.<ext>`` file of the run.
    derivatives
        ``--eeg-derivatives``, already made absolute at start-up (see
        :mod:`bids_eeg2fmri.bids.eegderivatives` for the layouts it finds).

    Returns
    -------
    pathlib.Path or None
        The single matching file; ``None`` when the run has no usable export and falls back to its
        raw EEG.

    Raises
    ------
    DataError
        When the folder is missing or several files match.
    """
    folder = Path(derivatives)
    if not folder.is_dir():
        raise DataError("--eeg-derivatives folder does not exist", folder)
    match = match_corrected_eeg(source, folder)
    if match.path is None:
        warn_fallback(source, match.reason, folder)
    return match.path
