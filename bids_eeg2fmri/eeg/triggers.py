"""Volume onsets of the BOLD run on the EEG clock, from the scanner's volume markers.

The scanner sends one trigger per volume; EEG amplifiers record it as an annotation whose name
depends on the vendor and set-up: Brain Products Recorder ``Response/R128`` (``R128``),
BrainVision Analyzer exports ``Scanner/Scan Start`` (beside one ``Scanner Start`` and per-slice
``s`` markers, which are not volumes), EEGLAB event types ``R128``, ``TR``, ``V``, ``Volume``,
and bare numeric codes. ``SyncStatus/Sync On`` pulses of the Brain Products SyncBox recur with
the scanner clock but are never volume triggers. Triggers occasionally go missing or arrive twice, so the markers are
placed on a TR grid, duplicates and off-grid strays dropped, short gaps filled by interpolation,
every change logged, and the result checked against the paired BOLD run (count and spacing).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

log = logging.getLogger("bids_eeg2fmri.eeg")

# Recognised vendor conventions, compared after normalisation (see _normalise); bare numbers
# (numeric trigger codes) are candidates too.
VENDOR_MARKERS = ("r128", "scanstart", "tr", "volume", "v")
# Marker types that are never volume triggers, whatever their spacing.
NEVER_VOLUMES = re.compile(r"^\s*(syncstatus|sync on|new segment|pulse artifact)", re.IGNORECASE)
# Relative tolerance of the median marker spacing against RepetitionTime. Scanner and amplifier
# clocks differ by parts per million; 1 % only catches markers that are not volume triggers.
SPACING_RTOL = 0.01
# Consecutive missing triggers still filled by interpolation; longer gaps mean the recording was
# interrupted, which interpolation cannot know.
MAX_GAP = 2
# Neighbours on each side used for the local linear fit that places an interpolated trigger.
FIT_NEIGHBOURS = 5


@dataclass
class VolumeOnsets:
    """Onsets of the BOLD volumes in EEG samples (from the first sample of the recording).

    Attributes
    ----------
    samples
        One onset per BOLD volume the recording holds, integer samples.
    sfreq
        Sampling frequency the samples refer to.
    source
        ``"markers"`` or ``"assumed-sync"``.
    marker
        The annotation description used, or ``None``.
    repairs
        One line per change made to the markers (dropped duplicate, interpolated trigger…).
    first_volume
        BOLD volume of ``samples[0]``: above 0 when the recording starts inside the BOLD run
        (e.g. an export segmented from a block marker).
    """

    samples: np.ndarray
    sfreq: float
    source: str
    marker: str | None = None
    repairs: list[str] = field(default_factory=list)
    first_volume: int = 0
    placement: dict[str, Any] = field(default_factory=dict)

    @property
    def times(self) -> np.ndarray:
        """Onsets in seconds from the first sample."""
        return self.samples / self.sfreq

    @property
    def spacing(self) -> float:
        """Median spacing in samples."""
        return float(np.median(np.diff(self.samples))) if self.samples.size > 1 else float("nan")


def _normalise(description: str) -> str:
    """``'Response/R128'`` → ``'r128'``, ``'Scan Start'`` → ``'scanstart'``, ``'R 128'`` → ``'r128'``."""
    text = str(description).strip().lower()
    text = re.sub(r"^(response|stimulus|comment|toggle|trigger|scanner)\s*/\s*", "", text)
    return re.sub(r"[\s_\-]+", "", text)


def marker_candidates(descriptions: np.ndarray, onsets: np.ndarray,
                      marker: str = "auto") -> dict[str, np.ndarray]:
    """Group annotation onsets by description, keeping the ones that may be volume markers.

    Parameters
    ----------
    descriptions, onsets
        Annotation descriptions and onsets (seconds).
    marker
        ``"auto"`` keeps every description matching a vendor convention or made of digits only
        (never ``SyncStatus`` and the like); any other value keeps the descriptions equal to it (exactly, or after stripping a ``Response/``-style prefix, case and
        spaces).

    Returns
    -------
    dict
        Description → sorted onsets.
    """
    descriptions = np.array([str(d) for d in descriptions], dtype=object)
    onsets = np.asarray(onsets, float)
    out = {}
    for desc in dict.fromkeys(descriptions):
        norm = _normalise(desc)
        hit = (norm in VENDOR_MARKERS or norm.isdigit()) and not NEVER_VOLUMES.match(desc) \
            if marker == "auto" else (
            desc == marker or norm == _normalise(marker))
        if hit:
            out[desc] = np.sort(onsets[descriptions == desc])
    return out


def choose_marker(candidates: dict[str, np.ndarray], tr: float | None,
                  n_volumes: int | None = None, discarded_by_scanner: int = 0,
                  path: str | os.PathLike | None = None) -> str | None:
    """Pick the candidate that marks the volumes; log the choice when there was one to make.

    Candidates spaced by the TR (within :data:`SPACING_RTOL`) come first; among them the one whose
    count is closest to the BOLD volumes (or volumes plus those the scanner discarded), then the
    one whose spacing is closest to the TR. With no TR (an EEG-only run) the most frequent
    candidate wins. Candidates with fewer than two markers have no spacing and are skipped.
    """
    scored = []
    for name, times in candidates.items():
        if times.size < 2:
            continue
        spacing = float(np.median(np.diff(times)))
        if not tr:
            scored.append(((-times.size,), name, times.size, spacing))
            continue
        spacing_err = abs(spacing - tr) / tr
        count_err = 0.0
        if n_volumes:
            count_err = min(abs(times.size - n) for n in (n_volumes, n_volumes + discarded_by_scanner))
            count_err /= n_volumes
        scored.append(((spacing_err > SPACING_RTOL, count_err, spacing_err), name, times.size,
                       spacing))
    if not scored:
        return None
    scored.sort()
    best = scored[0][1]
    if len(scored) > 1:
        others = "; ".join(f"{n!r}: {c} markers every {sp:.4g} s" for _, n, c, sp in scored[1:])
        log.info("%s: volume marker %r chosen (%d markers every %.4g s; TR %s, %s volumes) over %s",
                 path or "EEG", best, scored[0][2], scored[0][3], tr, n_volumes, others)
    return best


def repair_markers(samples: np.ndarray, sfreq: float, tr: float, *, max_gap: int = MAX_GAP,
                   path: str | os.PathLike | None = None) -> tuple[np.ndarray, list[str]]:
    """Place markers on the TR grid: drop duplicates and strays, interpolate short gaps.

    Parameters
    ----------
    samples
        Marker onsets in samples.
    sfreq
        Sampling frequency in Hz.
    tr
        Repetition time in seconds (the expected spacing).
    max_gap
        Most consecutive missing triggers filled by interpolation.
    path
        The EEG file, named in errors.

    Returns
    -------
    repaired : ndarray of int
        One onset per volume between the first and last marker.
    repairs : list of str
        What was changed, one line each.

    Raises
    ------
    DataError
        When the median spacing is far from the TR, no two consecutive markers are one TR apart,
        or more than ``max_gap`` consecutive triggers are missing.
    """
    s = np.sort(np.asarray(samples, dtype=np.int64))
    expected = tr * sfreq
    if s.size < 2:
        raise DataError(f"only {s.size} volume marker(s) found; cannot align EEG to BOLD", path)
    d = np.diff(s)
    median = float(np.median(d[d > 0])) if np.any(d > 0) else 0.0
    if abs(median - expected) > max(2.0, SPACING_RTOL * expected):
        raise DataError(f"volume marker spacing {median / sfreq:.4g} s is far from the BOLD "
                        f"RepetitionTime {tr:g} s", path)
    # Local spacing from markers that are one TR apart: exact even when TR·sfreq is not an
    # integer or the amplifier clock runs slightly fast.
    near = d[np.abs(d - expected) <= max(2.0, SPACING_RTOL * expected)]
    spacing = float(np.mean(near))
    tol = max(3.0, 0.05 * spacing)
    anchors = np.flatnonzero(np.abs(d - spacing) <= tol)
    start = int(anchors[0])
    repairs: list[str] = []
    k = {start: 0}

    def place(order: range) -> None:
        ref = start
        for i in order:
            steps = int(round((s[i] - s[ref]) / spacing))
            resid = s[i] - s[ref] - steps * spacing
            t = s[i] / sfreq
            if abs(resid) > tol:
                repairs.append(f"dropped stray volume marker at {t:.3f} s "
                               f"({resid / sfreq * 1e3:+.0f} ms off the TR grid)")
            elif steps == 0:
                repairs.append(f"dropped duplicate volume marker at {t:.3f} s")
            else:
                k[i] = k[ref] + steps
                ref = i

    place(range(start + 1, s.size))
    place(range(start - 1, -1, -1))
    idx = np.array(sorted(k, key=k.get))
    ks = np.array([k[i] for i in idx])
    ks -= ks[0]
    kept = s[idx]
    full = np.empty(ks[-1] + 1, dtype=np.int64)
    full[ks] = kept
    missing = np.setdiff1d(np.arange(full.size), ks)
    if missing.size:
        runs = np.split(missing, np.flatnonzero(np.diff(missing) > 1) + 1)
        longest = max(runs, key=len)
        if len(longest) > max_gap:
            at = (kept[ks < longest[0]][-1] / sfreq)
            raise DataError(f"{len(longest)} consecutive volume markers are missing after "
                            f"{at:.3f} s (at most {max_gap} are interpolated)", path)
        for m in missing:
            # Local linear fit of onset against volume index: follows slow clock drift and
            # reproduces the exact samples when the true spacing is a whole number of samples.
            near_k = ks[np.argsort(np.abs(ks - m), kind="stable")[:2 * FIT_NEIGHBOURS]]
            slope, icpt = np.polyfit(near_k, full[near_k].astype(float), 1)
            full[m] = int(round(icpt + slope * m))
            repairs.append(f"interpolated missing volume marker {m} at {full[m] / sfreq:.3f} s")
    for line in repairs:
        log.info("%s: %s", path or "EEG", line)
    return full, repairs


def find_volume_onsets(descriptions: np.ndarray, onsets: np.ndarray, *, sfreq: float,
                       n_times: int, tr: float | None, n_volumes: int | None,
                       marker: str = "auto", assume_sync: float | None = None,
                       discarded_by_scanner: int = 0,
                       locate: Callable[[float], tuple[int, dict[str, Any]]] | None = None,
                       path: str | os.PathLike | None = None) -> VolumeOnsets:
    """Find, repair and check the onsets of the BOLD volumes in an EEG recording.

    Parameters
    ----------
    descriptions, onsets
        The recording's annotations (onsets in seconds from its first sample).
    sfreq, n_times
        Sampling frequency and length of the recording.
    tr, n_volumes
        RepetitionTime and number of volumes of the paired BOLD run (``None`` for an EEG-only run:
        then the markers define both).
    marker
        ``"auto"`` or the exact annotation description of the volume trigger.
    assume_sync
        Used only when no volume marker exists: volume 0 starts this many seconds after the first
        EEG sample and volumes follow every TR.
    discarded_by_scanner
        ``NumberOfVolumesDiscardedByScanner``: leading triggers of volumes not in the BOLD file.
    locate
        When the recording holds fewer markers than volumes: maps the onset (seconds) of its
        first marker to that marker's BOLD volume and an ``EEGPlacement`` record, or raises
        :class:`DataError` (see :func:`~bids_eeg2fmri.eeg.segments.raw_locator`). Tried before
        the recording's ends are looked at.
    path
        The EEG file, named in errors and log lines.

    Returns
    -------
    VolumeOnsets

    Raises
    ------
    DataError
        No markers and no ``assume_sync``; marker spacing far from the TR; marker count
        irreconcilable with the BOLD run (see :func:`partial_first_volume`).
    """
    duration = n_times / sfreq
    candidates = marker_candidates(descriptions, onsets, marker)
    chosen = choose_marker(candidates, tr, n_volumes, discarded_by_scanner, path)
    if chosen is None:
        if assume_sync is None:
            seen = sorted(set(map(str, descriptions)))[:8]
            what = ("any of R128, Response/R128, Scanner/Scan Start, TR, Volume, V or a numeric "
                    "code") if marker == "auto" \
                else repr(marker)
            raise DataError(f"no volume markers ({what}) found among the annotations "
                            f"{seen}; give --volume-marker NAME or --assume-eeg-bold-sync "
                            "OFFSET", path)
        if tr is None or n_volumes is None:
            raise DataError("--assume-eeg-bold-sync needs a paired BOLD run for its TR and "
                            "volume count", path)
        samples = np.round((assume_sync + np.arange(n_volumes) * tr) * sfreq).astype(np.int64)
        inside = np.flatnonzero((samples >= 0) & (samples < n_times))
        if inside.size == 0:
            raise DataError(f"with --assume-eeg-bold-sync {assume_sync:g} s no BOLD volume "
                            f"starts inside the EEG ({duration:.1f} s)", path)
        log.warning("%s: no volume markers; aligning by time with volume 0 at %.3f s "
                    "(--assume-eeg-bold-sync). Check that the clocks were synchronised.",
                    path or "EEG", assume_sync)
        return VolumeOnsets(samples[inside], sfreq, "assumed-sync", None,
                            [f"no volume markers: assumed volume 0 at {assume_sync:g} s"],
                            first_volume=int(inside[0]),
                            placement={"Method": "assumed (--assume-eeg-bold-sync)"})

    times = candidates[chosen]
    raw_samples = np.round(times * sfreq).astype(np.int64)
    if tr is None:
        spacing_s = float(np.median(np.diff(times)))
        tr = spacing_s
    samples, repairs = repair_markers(raw_samples, sfreq, tr, path=path)
    first = 0
    placement: dict[str, Any] = {"Method": "markers of every volume"}
    if n_volumes is not None and samples.size != n_volumes:
        extra = samples.size - n_volumes
        if extra > 0 and extra == discarded_by_scanner:
            samples = samples[extra:]
            repairs.append(f"dropped the first {extra} volume marker(s): volumes discarded by the "
                           "scanner (NumberOfVolumesDiscardedByScanner)")
            log.info("%s: %s", path or "EEG", repairs[-1])
        elif extra > 0:
            raise DataError(f"found {samples.size} volume markers {chosen!r} (after repair) but "
                            f"the BOLD run has {n_volumes} volumes", path)
        else:
            first, placement = _place_partial(samples, n_times, sfreq=sfreq, tr=tr,
                                              n_volumes=n_volumes, marker=chosen,
                                              locate=locate, path=path)
            repairs.append(f"the EEG holds the markers of volumes {first}-"
                           f"{first + samples.size - 1} of {n_volumes}")
            log.warning("%s: %s (%s)", path or "EEG", repairs[-1], placement["Method"])
    return VolumeOnsets(samples, sfreq, "markers", chosen, repairs, first_volume=first,
                        placement=placement)


def _place_partial(samples: np.ndarray, n_times: int, *, sfreq: float, tr: float,
                   n_volumes: int, marker: str, locate, path) -> tuple[int, dict[str, Any]]:
    """BOLD volume of the first of fewer markers than volumes, and how it was found."""
    failed = None
    if locate is not None:
        try:
            first, placement = locate(float(samples[0] / sfreq))
        except DataError as exc:
            failed = exc.message
            log.warning("%s: cannot align to the raw recording: %s", path or "EEG", failed)
        else:
            if first + samples.size > n_volumes:
                raise DataError(f"aligned to the raw recording, the {samples.size} volume markers "
                                f"start at volume {first}, past the {n_volumes} of the BOLD run",
                                path)
            return first, placement
    try:
        first = partial_first_volume(samples, n_times, samples_per_tr=tr * sfreq,
                                     n_volumes=n_volumes, marker=marker, path=path)
    except DataError as exc:
        if locate is None:
            raise
        raise DataError(f"{exc.message}; aligning it to the raw recording failed: {failed}",
                        path) from exc
    return first, {"Method": "the recording's start or end lies inside the BOLD run"}


def partial_first_volume(samples: np.ndarray, n_times: int, *, samples_per_tr: float,
                         n_volumes: int, marker: str | None = None,
                         path: str | os.PathLike | None = None) -> int:
    """The BOLD volume of the first marker when the EEG holds fewer markers than volumes.

    A marker one TR before the first one would lie before the recording's first sample when the
    recording starts inside the BOLD run (an export segmented from a block marker); a marker one
    TR after the last one would lie past its end when the recording stops inside the run. Exactly
    one of the two must hold: the markers are then the last, or the first, volumes of the run.

    Parameters
    ----------
    samples
        Repaired marker onsets (samples from the first sample of the recording).
    n_times
        Length of the recording in samples.
    samples_per_tr
        RepetitionTime in samples.
    n_volumes
        Volumes of the BOLD run (more than ``samples.size``).
    marker, path
        Named in the error.

    Raises
    ------
    DataError
        When both or neither end of the recording lies inside the run: which volumes the markers
        belong to is then unknown.
    """
    starts_inside = samples[0] - samples_per_tr < 0
    ends_inside = samples[-1] + samples_per_tr >= n_times
    if starts_inside != ends_inside:
        return n_volumes - samples.size if starts_inside else 0
    where = ("starts and ends inside the BOLD run" if starts_inside else
             "has room for the missing markers before and after them")
    raise DataError(f"found {samples.size} volume markers {marker!r} (after repair) but the BOLD "
                    f"run has {n_volumes} volumes, and the recording {where}: which volumes they "
                    "belong to is unknown", path)


def annotation_table(raw) -> tuple[np.ndarray, np.ndarray]:
    """Descriptions and onsets (seconds from the first sample) of an :class:`mne.io.Raw`'s
    annotations."""
    ann = raw.annotations
    onsets = np.asarray(ann.onset, float) - raw.first_time if len(ann) else np.array([])
    return np.array([str(d) for d in ann.description], dtype=object), onsets


def find_volume_onsets_raw(raw, **kwargs) -> VolumeOnsets:
    """:func:`find_volume_onsets` on an :class:`mne.io.Raw` (annotations made relative to its start)."""
    descriptions, onsets = annotation_table(raw)
    return find_volume_onsets(descriptions, onsets, sfreq=raw.info["sfreq"], n_times=raw.n_times,
                              **kwargs)
