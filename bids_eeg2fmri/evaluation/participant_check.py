"""Were the derivatives made with a protocol's participant-level settings?

``--protocol`` sets EEG features at the participant level (the sampling rate, band-pass and STFT
of the paper, :data:`~.protocols.PROTOCOLS` ``participant``) and the model, split and metrics at
the group level. The spectrogram sidecars record what was done (``SamplingFrequency``,
``Filter``, ``STFT``, ``Scale`` and, when preprocessing ran under a protocol, ``Protocol``);
:func:`participant_warnings` compares them with the protocol the group level runs.

A mismatch is a warning in the report, not an error: derivatives made with equivalent flags, a
different TR or another tool's STFT are legitimate inputs, and the group-level comparison still
runs. What it no longer is, is a like-for-like reproduction of the paper's input, and the report
says which settings differ and how to rerun.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..bids.derivatives import sidecar_path
from ..group.runfiles import read_json
from .protocols import PROTOCOLS


def _stft(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda m: (m.get("STFT") or {}).get(key)


def _band(i: int) -> Callable[[dict[str, Any]], Any]:
    return lambda m: ((m.get("STFT") or {}).get("FrequencyRange") or [None, None])[i]


#: ``[eeg]`` setting → where a spectrogram sidecar records what was done.
RECORDED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "eeg_sfreq": lambda m: m.get("SamplingFrequency"),
    "eeg_l_freq": lambda m: (m.get("Filter") or {}).get("HighPass"),
    "eeg_h_freq": lambda m: (m.get("Filter") or {}).get("LowPass"),
    "stft_window": _stft("WindowLength"),
    "stft_window_trs": lambda m: (m.get("STFT") or {}).get("WindowTRs") or 0.0,
    "stft_overlap": _stft("Overlap"),
    "stft_taper": _stft("Taper"),
    "stft_context": _stft("ContextTRs"),
    "stft_scale": lambda m: m.get("Scale"),
    "stft_fmin": _band(0),
    "stft_fmax": _band(1),
}


def protocol_record(name: str) -> dict[str, Any]:
    """What a spectrogram sidecar records of the protocol it was made under."""
    return {"Name": name, "Description": PROTOCOLS[name]["description"],
            "ParticipantSettings": dict(PROTOCOLS[name]["participant"])}


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-6,
                                                              abs_tol=1e-6)
    return got == want


def mismatches(protocol: str, sidecar: dict[str, Any]) -> list[str]:
    """``setting recorded (protocol: value)`` for each participant setting of ``protocol`` that
    the sidecar's record contradicts or lacks."""
    out = []
    for name, want in PROTOCOLS[protocol]["participant"].items():
        got = RECORDED[name](sidecar)
        if not _same(got, want):
            out.append(f"{name} {'not recorded' if got is None else got} (protocol: {want})")
    return out


def participant_warnings(protocol: str, sidecars: Iterable[tuple[str, dict[str, Any]]]
                         ) -> list[str]:
    """Report warnings for runs whose spectrogram was not made with ``protocol``'s participant
    settings, one per distinct set of differences (naming the runs' count and the first run).

    Parameters
    ----------
    protocol
        The group level's ``--protocol`` (empty: nothing to check).
    sidecars
        ``(run key, spectrogram sidecar content)`` of the runs the group level reads.
    """
    if not protocol or not PROTOCOLS[protocol]["participant"]:
        return []
    found: dict[tuple[str, ...], list[str]] = {}
    for key, meta in sidecars:
        diff = tuple(mismatches(protocol, meta))
        if diff:
            found.setdefault(diff, []).append(key)
    return [f"{len(keys)} run(s) (e.g. {keys[0]}) were not preprocessed with --protocol "
            f"{protocol}'s participant settings: {'; '.join(diff)}. The group level runs the "
            f"protocol on them anyway, but their EEG input is not the paper's: rerun the "
            f"participant level with --protocol {protocol} for a like-for-like comparison."
            for diff, keys in found.items()]


def read_sidecars(runs: Iterable[tuple[str, Path]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, content)`` of each spectrogram's JSON sidecar, read lazily (nothing is read when
    :func:`participant_warnings` has no protocol to check); a missing or unreadable sidecar reads
    as empty, which the check reports as settings not recorded."""
    for key, h5 in runs:
        try:
            yield key, read_json(sidecar_path(h5))
        except DataError:
            yield key, {}
