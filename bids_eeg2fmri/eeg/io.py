"""Reading EEG recordings through mne-bids, and choosing between raw and derivative EEG.

``mne_bids.read_raw_bids`` gives channel types from ``channels.tsv`` (EEG, ECG, EOG, MISC), bad
channels from its ``status`` column, the montage from ``electrodes.tsv`` + ``coordsystem.json`` and
annotations from ``events.tsv`` — all of which the later stages rely on.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import mne
import numpy as np

from ..bids.eegderivatives import is_bids_eeg_name, match_corrected_eeg, warn_fallback
from ..errors import DataError
from . import sidecars
from .exports import read_export

log = logging.getLogger("bids_eeg2fmri.eeg")


def read_eeg(path: str | os.PathLike) -> mne.io.BaseRaw:
    """Read and preload a BIDS EEG recording with ``mne_bids.read_raw_bids``.

    What real datasets publish is accepted: missing sidecars (the header says what is needed), a
    ``channels.tsv`` or ``events.tsv`` that is not strictly tab-separated (read leniently, with a
    warning naming the file, instead of mne-bids' refusal), and the recording's own markers are
    kept beside the ``events.tsv`` annotations that mne-bids puts in their place. An ECG lead not
    typed ECG is found by its name.

    Parameters
    ----------
    path
        The ``*_eeg.<ext>`` file inside a BIDS (raw or derivative) tree.

    Returns
    -------
    mne.io.BaseRaw
        Preloaded, channel types and montage from the sidecars, annotations from the recording's
        marker file plus events.tsv.

    Raises
    ------
    DataError
        When the file cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("EEG file does not exist", path)
    if not is_bids_eeg_name(path):  # a corrected export named by its pipeline (--eeg-derivatives)
        return _checked(read_export(path), path)
    found = sidecars.find_sidecars(path)
    problems = sidecars.sidecar_problems(found)
    for bad, what in problems.items():
        log.warning("%s: %s; read leniently", bad, "; ".join(what))
    try:
        native = _read_native(path)
        raw = None
        if not problems:
            try:
                raw = _read_bids(path)
            except Exception as exc:  # noqa: BLE001 - mne-bids refuses many real layouts
                log.warning("%s: mne-bids cannot read it with its sidecars (%s: %s); reading the "
                            "recording's header", path, type(exc).__name__, exc)
        if raw is None:
            raw = native.copy().load_data(verbose=False)
        # Also after mne-bids: it does not look for task-level channels.tsv at the top.
        declared = _apply_channels_tsv(raw, sidecars.applicable(found, "_channels.tsv"))
    except DataError:
        raise
    except Exception as exc:  # readers raise many types for malformed files
        raise DataError(f"cannot read EEG: {type(exc).__name__}: {exc}", path) from None
    _keep_recording_markers(raw, native)
    _type_ecg_by_name(raw, path, declared)
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


def _read_bids(path: Path) -> mne.io.BaseRaw:
    from mne_bids import get_bids_path_from_fname, read_raw_bids

    bids_path = get_bids_path_from_fname(path, check=False, verbose=False)
    with mne.utils.use_log_level("ERROR"):
        with warnings.catch_warnings():
            # mne-bids warns about every optional sidecar field it does not find
            warnings.simplefilter("ignore", RuntimeWarning)
            raw = read_raw_bids(bids_path, verbose=False)
        raw.load_data(verbose=False)
    return raw


def _read_native(path: Path) -> mne.io.BaseRaw:
    """The recording as its own header and marker file describe it (no sidecars)."""
    with mne.utils.use_log_level("ERROR"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return mne.io.read_raw(path, preload=False, verbose=False)


def _apply_channels_tsv(raw: mne.io.BaseRaw, tsv: Path | None) -> set[str]:
    """Channel types and bad channels from a leniently read ``channels.tsv``; return the names it
    types (lower case)."""
    if tsv is None:
        return set()
    types, bads = sidecars.channel_types(sidecars.read_tsv(tsv))
    by_lower = {n.lower(): n for n in raw.ch_names}
    mapping = {by_lower[n.lower()]: t for n, t in types.items() if n.lower() in by_lower}
    unknown = sorted(set(types) - {n for n in types if n.lower() in by_lower})
    if unknown:
        log.warning("%s: channels %s are not in the recording", tsv, ", ".join(unknown[:8]))
    with mne.utils.use_log_level("ERROR"):
        raw.set_channel_types(mapping, on_unit_change="ignore")
    raw.info["bads"] = list(dict.fromkeys([*raw.info["bads"],
                                           *(by_lower[b.lower()] for b in bads
                                             if b.lower() in by_lower)]))
    return {n.lower() for n in types}


def _relative_onsets(raw: mne.io.BaseRaw) -> np.ndarray:
    """Annotation onsets in seconds from the first sample (the convention of the triggers)."""
    return np.asarray(raw.annotations.onset, float) - raw.first_time


def _keep_recording_markers(raw: mne.io.BaseRaw, native: mne.io.BaseRaw) -> None:
    """Add the marker-file annotations that ``events.tsv`` replaced (volume triggers among them)."""
    if not len(native.annotations):
        return
    old = raw.annotations
    have = {(str(d), int(round(o * 1e3))) for d, o in zip(old.description, _relative_onsets(raw))}
    add = [(str(d), o, dur) for d, o, dur in zip(native.annotations.description,
                                                 _relative_onsets(native),
                                                 native.annotations.duration)
           if (str(d), int(round(o * 1e3))) not in have]
    if not add:
        return
    desc, onset, dur = (np.array(x, dtype=object if i == 0 else float)
                        for i, x in enumerate(zip(*add)))
    # Same convention as pipeline.add_volume_annotations: without a measurement date MNE takes
    # the onsets given to set_annotations as relative to the first sample.
    if raw.info["meas_date"] is None:
        onsets, orig = np.concatenate([_relative_onsets(raw), onset]), None
    else:
        onsets, orig = np.concatenate([np.asarray(old.onset), onset + raw.first_time]), old.orig_time
    raw.set_annotations(mne.Annotations(
        onsets, np.concatenate([old.duration, dur]),
        np.concatenate([np.asarray(old.description, dtype=object), desc]), orig_time=orig))


def _type_ecg_by_name(raw: mne.io.BaseRaw, path: Path, declared: set[str]) -> None:
    """Type an ECG lead by its name when no channel is typed ECG and no channels.tsv gave that
    channel a type (``declared``, lower-case names)."""
    if mne.pick_types(raw.info, ecg=True, exclude=()).size:
        return
    names = [n for n in sidecars.ecg_by_name(raw.ch_names) if n.lower() not in declared]
    if names:
        with mne.utils.use_log_level("ERROR"):
            raw.set_channel_types({n: "ecg" for n in names}, on_unit_change="ignore")
        log.info("%s: channel %s typed ECG by its name", path, ", ".join(names))


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
