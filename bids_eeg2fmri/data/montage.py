"""One EEG montage for runs recorded with different caps (``--eeg-channels common|interpolate``).

Participants of one study are often recorded with different caps (ds002338: 63 EEG channels
each, six names differing between participants), and a trained model meets new EEG with yet
another cap. Two ways to give every run the same channels, in the same order:

- ``common``: keep the channels every run has (order of the first run); the others are dropped
  and listed in the model card.
- ``interpolate``: keep every channel any run has; each run's missing channels are interpolated
  from its own with spherical splines (MNE ``interpolate_bads``). Positions come from the
  participant-level EEG (the recording's header or ``electrodes.tsv``, kept in
  ``desc-preproc_eeg.fif``), else from the standard 10-05 positions (MNE ``colin27_1005``, formerly ``standard_1005``) by name.

The interpolation is linear in the channels, so it is applied to the per-TR spectrogram values
directly: the missing channel's spectrogram is the spline-weighted sum of the present channels'
(exact for a linear quantity; for log-power a smooth approximation, as in topographic maps).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

log = logging.getLogger("bids_eeg2fmri")

MODES = ("common", "interpolate")
# MNE's 10-05 positions on the Colin27 head ('standard_1005' before MNE 1.13).
STANDARD = "colin27_1005"
MIN_CHANNELS = 2


@dataclass
class Montage:
    """The channels every run is brought to, and what that took per run."""

    mode: str
    channels: list[str]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    interpolated: dict[str, list[str]] = field(default_factory=dict)
    positions: str | None = None

    def describe(self) -> dict[str, Any]:
        """The ``Montage`` block of a model card."""
        return {"Mode": self.mode, "Channels": list(self.channels),
                "DroppedPerRun": {k: v for k, v in self.dropped.items() if v},
                "InterpolatedPerRun": {k: v for k, v in self.interpolated.items() if v},
                "Positions": self.positions}


def plan_montage(channels: Mapping[str, Sequence[str]], mode: str = "common") -> Montage:
    """Decide the common montage of runs with possibly different channels.

    Parameters
    ----------
    channels
        Run key → its EEG channel names, in file order.
    mode
        ``common`` or ``interpolate``.

    Raises
    ------
    DataError
        When fewer than two channels remain in ``common`` mode.
    """
    if mode not in MODES:
        raise ValueError(f"eeg_channels must be one of {MODES}, got {mode!r}")
    lists = {k: [str(c) for c in v] for k, v in channels.items()}
    first = next(iter(lists.values()), [])
    if mode == "common":
        shared = set.intersection(*(set(v) for v in lists.values())) if lists else set()
        keep = [c for c in first if c in shared]
        if len(keep) < MIN_CHANNELS:
            raise DataError(f"the runs share {len(keep)} EEG channel(s); use --eeg-channels "
                            "interpolate")
        dropped = {k: [c for c in v if c not in shared] for k, v in lists.items()}
        montage = Montage(mode, keep, dropped=dropped)
    else:
        union = list(dict.fromkeys(c for v in lists.values() for c in v))
        missing = {k: [c for c in union if c not in v] for k, v in lists.items()}
        montage = Montage(mode, union, interpolated=missing)
    for key, names in {**montage.dropped, **montage.interpolated}.items():
        if names:
            log.warning("%s: EEG channel(s) %s %s to match the other runs (--eeg-channels %s)",
                        key, ", ".join(names), "dropped" if mode == "common" else "interpolated",
                        mode)
    return montage


def channel_positions(names: Sequence[str], recordings: Sequence[str | os.PathLike] = ()
                      ) -> tuple[dict[str, np.ndarray], str]:
    """Head positions (m) of ``names``: from the recordings' own info, else :data:`STANDARD`.

    Parameters
    ----------
    names
        Channel names.
    recordings
        ``desc-preproc_eeg`` files (``.vhdr``/``.fif``) whose info may carry positions.

    Returns
    -------
    positions : dict
        Name → (3,) position for every name that has one.
    source : str
        Where they came from, for the model card.
    """
    import mne

    pos: dict[str, np.ndarray] = {}
    for path in recordings:
        if not Path(path).is_file():
            continue
        info = (mne.io.read_info(path, verbose=False) if Path(path).suffix == ".fif" else
                mne.io.read_raw(path, preload=False, verbose=False).info)
        for ch in info["chs"]:
            loc = np.asarray(ch["loc"][:3], float)
            if ch["ch_name"] in names and ch["ch_name"] not in pos and np.isfinite(loc).all() \
                    and np.linalg.norm(loc) > 0:
                pos[ch["ch_name"]] = loc
    from_files = len(pos)
    std = mne.channels.make_standard_montage(STANDARD).get_positions()["ch_pos"]
    lower = {k.lower(): v for k, v in std.items()}
    for name in names:
        if name not in pos and name.lower() in lower:
            pos[name] = np.asarray(lower[name.lower()], float)
    source = ("recordings" if from_files == len(pos) else
              STANDARD if not from_files else f"recordings + {STANDARD}")
    return pos, source


def interpolation_matrix(present: Sequence[str], missing: Sequence[str],
                         positions: Mapping[str, np.ndarray]) -> np.ndarray:
    """Spherical-spline weights ``(len(missing), len(present))`` from MNE ``interpolate_bads``.

    Raises
    ------
    DataError
        Naming the channels without a position.
    """
    import mne

    names = list(present) + list(missing)
    unknown = [c for c in names if c not in positions]
    if unknown:
        raise DataError(f"no position for EEG channel(s) {', '.join(unknown)} (neither in the "
                        f"recording nor in {STANDARD}); use --eeg-channels common")
    info = mne.create_info(names, 1.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(
        ch_pos={c: positions[c] for c in names}, coord_frame="head"), verbose=False)
    # Unit impulses on the present channels: interpolate_bads writes the weights into the rows
    # of the missing ones (it is linear in the data).
    data = np.zeros((len(names), len(present)))
    data[:len(present)] = np.eye(len(present))
    evoked = mne.EvokedArray(data, info, verbose=False)
    evoked.info["bads"] = list(missing)
    with mne.utils.use_log_level("ERROR"):
        evoked.interpolate_bads(reset_bads=True, origin=(0.0, 0.0, 0.04), verbose=False)
    return evoked.data[len(present):]


def conform(eeg: np.ndarray, channels: Sequence[str], montage: Montage | Sequence[str], *,
            positions: Mapping[str, np.ndarray] | None = None, interpolate: bool = False,
            path: str | os.PathLike | None = None) -> np.ndarray:
    """A run's spectrogram ``(volumes, channels, …)`` on the montage's channels, in its order.

    Parameters
    ----------
    eeg
        The run's array, channel axis 1.
    channels
        Its channel names.
    montage
        The target channels (or a :class:`Montage`).
    positions
        Channel positions, needed when channels are interpolated.
    interpolate
        Interpolate channels the run lacks; otherwise they are an error naming all of them.
    path
        The run's file, named in errors.

    Raises
    ------
    DataError
        One line naming the missing channels when they may not be interpolated.
    """
    target = list(montage.channels if isinstance(montage, Montage) else montage)
    channels = [str(c) for c in channels]
    if channels == target:
        return eeg
    missing = [c for c in target if c not in channels]
    if missing and not interpolate:
        raise DataError(f"the EEG lacks {len(missing)} channel(s) of the model's montage: "
                        f"{', '.join(missing)} (interpolate them with --eeg-channels interpolate)",
                        path=path)
    index = {c: i for i, c in enumerate(channels)}
    out = np.empty((eeg.shape[0], len(target)) + eeg.shape[2:], dtype=eeg.dtype)
    for j, c in enumerate(target):
        if c in index:
            out[:, j] = eeg[:, index[c]]
    if missing:
        present = [c for c in target if c in index]
        try:
            weights = interpolation_matrix(present, missing, positions or {})
        except DataError as exc:
            raise DataError(exc.message, path=path) from None
        src = np.stack([eeg[:, index[c]] for c in present], axis=1)
        filled = np.tensordot(weights, src, axes=([1], [1]))  # (missing, volumes, …)
        for k, c in enumerate(missing):
            out[:, target.index(c)] = np.moveaxis(filled[k:k + 1], 0, 1)[:, 0]
    return out


def spectrogram_channels(path: str | os.PathLike) -> list[str]:
    """Channel names of a ``desc-stft_spectrogram.h5`` file (without reading its values)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return [c.decode() if isinstance(c, bytes) else str(c) for c in fh["channels"][:]]
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read spectrogram channels: {exc}", path=path) from None


def preproc_eeg_of(spectrogram: str | os.PathLike) -> Path:
    """The ``desc-preproc_eeg`` (``.vhdr``, else ``.fif``) written beside a spectrogram."""
    p = Path(spectrogram)
    stem = p.name.replace("_desc-stft_spectrogram.h5", "_desc-preproc_eeg")
    vhdr = p.with_name(stem + ".vhdr")
    return vhdr if vhdr.exists() else p.with_name(stem + ".fif")


def montage_for_runs(spectrograms: Mapping[str, str | os.PathLike], mode: str
                     ) -> tuple[Montage, dict[str, np.ndarray] | None]:
    """:func:`plan_montage` of the runs' spectrograms, with positions when interpolating."""
    montage = plan_montage({k: spectrogram_channels(p) for k, p in spectrograms.items()}, mode)
    if not any(montage.interpolated.values()):
        return montage, None
    positions, montage.positions = channel_positions(
        montage.channels, [preproc_eeg_of(p) for p in spectrograms.values()])
    return montage, positions


def conform_to_model(eeg: np.ndarray, channels: Sequence[str], model_channels: Sequence[str],
                     card: Mapping[str, Any], path: str | os.PathLike) -> tuple[np.ndarray,
                                                                               list[str]]:
    """New EEG on a trained model's channels: reordered, extra channels left out, missing ones
    interpolated when the model was trained with ``--eeg-channels interpolate`` (its card says),
    otherwise one error line naming them.
    """
    model_channels = [str(c) for c in model_channels]
    channels = [str(c) for c in channels]
    if channels == model_channels:
        return eeg, channels
    mode = ((card.get("Data") or {}).get("Montage") or {}).get("Mode", "common")
    missing = [c for c in model_channels if c not in channels]
    positions = None
    if missing and mode == "interpolate":
        positions, _ = channel_positions(list(dict.fromkeys(model_channels + channels)),
                                         [preproc_eeg_of(path)])
        log.warning("%s: interpolating EEG channel(s) %s missing from the model's montage",
                    Path(path).name, ", ".join(missing))
    extra = [c for c in channels if c not in model_channels]
    if extra and not (missing and mode != "interpolate"):
        log.info("%s: EEG channel(s) %s are not in the model's montage and are left out",
                 Path(path).name, ", ".join(extra))
    out = conform(eeg, channels, model_channels, positions=positions,
                  interpolate=mode == "interpolate", path=path)
    return out, model_channels
