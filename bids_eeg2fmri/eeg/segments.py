"""Place a segmented EEG export inside its BOLD run by aligning it to the run's raw recording.

A corrected export (BrainVision Analyzer) is usually cut from a block marker and may stop before
the last volume: both of its ends then lie inside the BOLD run, and its volume markers alone cannot
say which volumes they are. The export keeps the raw recording's markers with the same descriptions
(volume triggers, block markers such as ``Stimulus/S 99``), so the time shift that maps the
export's markers onto the raw's is found as an analyst would: try every shift implied by pairing
markers of the same description, keep the one under which most export markers land on a raw
marker, and refuse when that shift is not unique. The raw's own (repaired) volume markers then
number the export's volumes.

Sampling rates differ (raw 5 kHz, export 200 Hz): everything is in seconds.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mne
import numpy as np

from ..errors import DataError
from .triggers import annotation_table, find_volume_onsets

log = logging.getLogger("bids_eeg2fmri.eeg")

# Markers that mark where a file (or segment) begins, not an event both files share.
_NOT_SHARED = ("new segment",)
# Tolerance in samples of the slower of the two recordings.
TOLERANCE_SAMPLES = 3


@dataclass
class Alignment:
    """Shift (seconds) that maps an export time onto the raw recording: ``t_raw = t + shift``."""

    shift: float
    matched: int
    compared: int


def _shared(desc: np.ndarray, other: set[str]) -> np.ndarray:
    return np.array([d in other and not d.lower().startswith(_NOT_SHARED) for d in desc], bool)


def _score(shift: float, ex_desc: np.ndarray, ex_on: np.ndarray,
           raw_by_desc: dict[str, np.ndarray], tolerance: float) -> int:
    hits = 0
    for d in np.unique(ex_desc):
        ref = raw_by_desc[d]
        t = ex_on[ex_desc == d] + shift
        idx = np.searchsorted(ref, t)
        near = np.minimum(np.abs(ref[np.clip(idx - 1, 0, ref.size - 1)] - t),
                          np.abs(ref[np.clip(idx, 0, ref.size - 1)] - t))
        hits += int(np.count_nonzero(near <= tolerance))
    return hits


def align_markers(export_desc, export_onsets, raw_desc, raw_onsets, *, tolerance: float,
                  min_fraction: float = 0.5) -> Alignment:
    """The unique shift that maps most of an export's markers onto the raw's same markers.

    Parameters
    ----------
    export_desc, export_onsets
        Marker descriptions and onsets (seconds from the export's first sample).
    raw_desc, raw_onsets
        The same for the raw recording.
    tolerance
        Seconds within which an export marker matches a raw marker (a few samples of the slower
        recording).
    min_fraction
        Least fraction of the export's shared markers (descriptions present in both) that must
        match under the chosen shift.

    Returns
    -------
    Alignment

    Raises
    ------
    DataError
        No shared markers; several shifts match equally well (e.g. only periodic volume markers);
        the best shift matches too few markers. The message says why (no path).
    """
    ex_desc = np.asarray([str(d) for d in export_desc], dtype=object)
    ex_on = np.asarray(export_onsets, float)
    rw_desc = np.asarray([str(d) for d in raw_desc], dtype=object)
    rw_on = np.asarray(raw_onsets, float)
    keep = _shared(ex_desc, set(rw_desc))
    ex_desc, ex_on = ex_desc[keep], ex_on[keep]
    if ex_desc.size == 0:
        raise DataError("the export and the raw recording share no marker description")
    raw_by_desc = {d: np.sort(rw_on[rw_desc == d]) for d in np.unique(ex_desc)}
    # The rarest shared description implies the fewest candidate shifts.
    anchor = min(raw_by_desc, key=lambda d: (raw_by_desc[d].size, d))
    cands = (raw_by_desc[anchor][None, :] - ex_on[ex_desc == anchor][:, None]).ravel()
    cands = np.unique(np.round(cands / tolerance) * tolerance)
    scores = np.array([_score(s, ex_desc, ex_on, raw_by_desc, tolerance) for s in cands])
    best = int(scores.max())
    tied = cands[scores == best]
    if np.ptp(tied) > 2 * tolerance:
        raise DataError(f"{tied.size} different shifts each match {best} of the export's "
                        f"{ex_desc.size} shared markers: the alignment is ambiguous")
    if best < 2 or best < min_fraction * ex_desc.size:
        raise DataError(f"the best shift matches only {best} of the export's {ex_desc.size} "
                        "shared markers")
    # Neighbouring grid points of the same true shift may tie: take their middle.
    shift = float(np.mean(tied))
    return Alignment(shift, best, int(ex_desc.size))


def volume_at(time: float, raw_volume_times: np.ndarray, raw_first_volume: int, *,
              tolerance: float) -> int:
    """The BOLD volume whose (raw) marker lies at ``time`` (seconds in the raw recording).

    Raises
    ------
    DataError
        When no raw volume marker lies within ``tolerance`` of ``time``.
    """
    times = np.asarray(raw_volume_times, float)
    if times.size == 0:
        raise DataError("the raw recording has no volume markers")
    k = int(np.argmin(np.abs(times - time)))
    if abs(times[k] - time) > tolerance:
        raise DataError(f"no raw volume marker at {time:.3f} s (nearest {times[k]:.3f} s)")
    return raw_first_volume + k


def raw_locator(export: mne.io.BaseRaw, reference: str | os.PathLike, *, tr: float,
                n_volumes: int, discarded_by_scanner: int = 0
                ) -> Callable[[float], tuple[int, dict[str, Any]]]:
    """A function placing an export's first volume marker through the run's raw recording.

    The raw recording is read (header and markers only) when the function is first called, so
    exports that cover the whole run never touch it.

    Parameters
    ----------
    export
        The export as read (its annotations are its markers).
    reference
        The raw EEG recording of the same run.
    tr, n_volumes, discarded_by_scanner
        Of the paired BOLD run.

    Returns
    -------
    callable
        ``locate(t)`` with ``t`` the onset (seconds in the export) of its first volume marker;
        returns the BOLD volume of that marker and the ``EEGPlacement`` record. Raises
        :class:`DataError` (without a path) saying why the alignment failed.
    """
    reference = Path(reference)

    def locate(t: float) -> tuple[int, dict[str, Any]]:
        try:
            with mne.utils.use_log_level("ERROR"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                raw = mne.io.read_raw(reference, preload=False, verbose=False)
        except Exception as exc:  # noqa: BLE001 - unfetched (annex link), truncated, unknown
            raise DataError(f"the raw recording {reference} is not readable "
                            f"({type(exc).__name__}): fetch the raw EEG of the run") from exc
        tol = TOLERANCE_SAMPLES / min(export.info["sfreq"], raw.info["sfreq"])
        ex_desc, ex_on = annotation_table(export)
        rw_desc, rw_on = annotation_table(raw)
        found = align_markers(ex_desc, ex_on, rw_desc, rw_on, tolerance=tol)
        vols = find_volume_onsets(rw_desc, rw_on, sfreq=raw.info["sfreq"], n_times=raw.n_times,
                                  tr=tr, n_volumes=n_volumes,
                                  discarded_by_scanner=discarded_by_scanner, path=reference)
        first = volume_at(t + found.shift, vols.times, vols.first_volume, tolerance=tol)
        log.info("%s: aligned to the raw recording %s (shift %.3f s, %d of %d markers match): "
                 "its first volume marker is BOLD volume %d", export.filenames[0] if
                 export.filenames else "EEG", reference, found.shift, found.matched,
                 found.compared, first)
        return first, {"Method": "aligned to the raw recording's markers",
                       "RawRecording": os.fspath(reference),
                       "ShiftSeconds": round(found.shift, 6),
                       "MatchedMarkers": found.matched, "ComparedMarkers": found.compared}

    return locate
