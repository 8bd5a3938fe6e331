"""Reading corrected EEG exports whose names are not BIDS (``…_eeg_pp.vhdr``, ``…_eeg_preproc.set``).

mne-bids cannot read them (it rebuilds the file name from the entities and looks for sidecars
named after it), so they are read with ``mne.io.read_raw`` and their channel types set from the
channel names, as vendor software writes them: ``ECG``/``EKG`` (also numbered, ``ECG1``),
``EOG…``, ``EMG…``; everything else stays EEG. The recording's own markers (``.vmrk``, EEGLAB
events) become its annotations.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import mne

from ..errors import DataError
from .sidecars import ECG_NAME

_TYPE_BY_NAME = (
    (ECG_NAME, "ecg"),  # one definition of an ECG lead's name, shared with the BIDS reader
    (re.compile(r"^(v|h)?eog\w*$", re.I), "eog"),
    (re.compile(r"^emg\w*$", re.I), "emg"),
)


def channel_types_from_names(names: list[str]) -> dict[str, str]:
    """Non-EEG channel types recognised from channel names (``{"ECG": "ecg", "VEOG": "eog"}``)."""
    out = {}
    for name in names:
        for pattern, kind in _TYPE_BY_NAME:
            if pattern.match(name.strip()):
                out[name] = kind
                break
    return out


def read_export(path: str | os.PathLike) -> mne.io.BaseRaw:
    """Read a non-BIDS EEG export with its own markers, channel types from the names.

    Raises
    ------
    DataError
        When the file cannot be read.
    """
    path = Path(path)
    try:
        with mne.utils.use_log_level("ERROR"), warnings.catch_warnings():
            # readers warn about unknown units, boundary events, missing positions
            warnings.simplefilter("ignore", RuntimeWarning)
            raw = mne.io.read_raw(path, preload=True, verbose=False)
    except Exception as exc:  # readers raise many types for malformed files
        raise DataError(f"cannot read EEG: {type(exc).__name__}: {exc}", path) from None
    types = channel_types_from_names(raw.ch_names)
    if types:
        raw.set_channel_types(types, on_unit_change="ignore", verbose=False)
    return raw
