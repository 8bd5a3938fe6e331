"""The EEG representation the group level trains on (``--eeg-features``).

- ``spectrogram``: every STFT bin and frame, as collected.
- ``bands``: the mean log power of each ``[eeg] bands`` band per channel and TR
  (:mod:`~bids_eeg2fmri.data.bandpool`) — the input of EEG→fMRI and, mirroring it, the target of
  fMRI→EEG: ~5 band cells per channel instead of ~30 bins, which a few participants can train
  deep models on.
- ``raw``: the cleaned EEG, band-limited and resampled, cut per volume
  (:mod:`~bids_eeg2fmri.data.raw_eeg`), as EEG→fMRI input with ``--raw-window`` seconds per
  sample (Bricman & Borst 2021's 30 s); fMRI→EEG keeps its spectrogram targets.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import Config
from .collect import GroupData


def apply_eeg_features(config: Config, datasets: dict[str, GroupData],
                       participant: dict[str, Any]) -> None:
    """Replace the collected spectrograms of ``datasets`` by the ``--eeg-features`` representation
    (in place); ``participant`` is the participant level's saved configuration (its bands)."""
    gr = config.group
    if gr.eeg_features == "bands":
        from ..data.bandpool import pool_runs

        bands = participant.get("eeg", {}).get("bands") or config.eeg.bands
        for data in datasets.values():
            data.runs, data.spec = pool_runs(data.runs, data.spec, bands)
    elif gr.eeg_features == "raw" and "eeg2fmri" in datasets:
        from ..data.raw_eeg import raw_runs

        data = datasets["eeg2fmri"]
        data.runs, data.spec = raw_runs(data.runs, data.spec, [f.spectrogram for f in data.files],
                                        band=gr.raw_eeg_band, out_sfreq=gr.raw_eeg_sfreq)


def direction_config(config: Config, direction: str) -> Config:
    """``config`` as one direction trains with it: raw EEG→fMRI input reads ``--raw-window``."""
    if direction == "eeg2fmri" and config.group.eeg_features == "raw":
        return dataclasses.replace(config, group=dataclasses.replace(
            config.group, window_s=config.group.raw_window_s))
    return config
