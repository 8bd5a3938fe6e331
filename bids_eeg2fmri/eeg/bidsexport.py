"""The cleaned EEG as a BIDS EEG derivative (BEP021): BrainVision (or FIF) with its sidecars.

``<src>_desc-preproc_eeg.vhdr`` (+ ``.vmrk``, ``.eeg``; written by :func:`mne.export.export_raw`
through pybv), ``<src>_desc-preproc_channels.tsv`` (``status``/``status_description`` of the bad
channels), ``<src>_desc-preproc_events.tsv`` (one row per BOLD volume onset) and the
``_eeg.json`` sidecar with the fields BIDS requires of EEG (``SamplingFrequency``,
``PowerLineFrequency``, ``EEGReference``, ``SoftwareFilters``). ``mne_bids.read_raw_bids`` reads
it without warnings. ``fif`` keeps the former single-file output.
"""

from __future__ import annotations

import filecmp
import os
import tempfile
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd

FORMATS = ("brainvision", "fif")
EXTENSIONS = {"brainvision": ".vhdr", "fif": ".fif"}
_BIDS_TYPES = {"eeg": "EEG", "ecg": "ECG", "eog": "EOG", "emg": "EMG", "stim": "TRIG",
               "resp": "RESP"}


def channels_table(raw: mne.io.BaseRaw, reasons: dict[str, str] | None = None) -> pd.DataFrame:
    """``channels.tsv`` rows: name, type, units, status and why a channel is bad."""
    reasons = reasons or {}
    bads = set(raw.info["bads"])
    return pd.DataFrame({
        "name": raw.ch_names,
        "type": [_BIDS_TYPES.get(t, "MISC") for t in raw.get_channel_types()],
        "units": ["µV" if t in ("eeg", "ecg", "eog", "emg") else "n/a"
                  for t in raw.get_channel_types()],
        "sampling_frequency": float(raw.info["sfreq"]),
        "status": ["bad" if n in bads else "good" for n in raw.ch_names],
        "status_description": [reasons.get(n, "bad channel") if n in bads else "n/a"
                               for n in raw.ch_names]})


def events_table(onsets: np.ndarray, sfreq: float, first_volume: int = 0) -> pd.DataFrame:
    """``events.tsv``: one ``volume`` event per BOLD volume onset (s from the first sample)."""
    onsets = np.asarray(onsets, dtype=float)
    return pd.DataFrame({"onset": onsets, "duration": 0.0, "trial_type": "volume",
                         "volume": np.arange(len(onsets)) + int(first_volume),
                         "sample": np.round(onsets * sfreq).astype(int)})


def bids_eeg_fields(raw: mne.io.BaseRaw, report: dict[str, Any]) -> dict[str, Any]:
    """The sidecar fields BIDS requires of EEG, from the data and the cleaning report."""
    filt = report.get("Filter") or {}
    filters: dict[str, Any] = {}
    if filt:
        filters["Bandpass"] = {"HighPass": filt.get("HighPass"), "LowPass": filt.get("LowPass"),
                               "Method": filt.get("Method")}
        if filt.get("Notch"):
            filters["Notch"] = {"Frequencies": filt["Notch"]}
    types = raw.get_channel_types()
    line = raw.info.get("line_freq")
    return {"SamplingFrequency": float(raw.info["sfreq"]),
            "PowerLineFrequency": float(line) if line else "n/a",
            "EEGReference": str(report.get("Reference", "n/a")),
            "SoftwareFilters": filters or "n/a",
            "EEGChannelCount": int(sum(t == "eeg" for t in types)),
            "ECGChannelCount": int(sum(t == "ecg" for t in types)),
            "EOGChannelCount": int(sum(t == "eog" for t in types)),
            "RecordingDuration": float(raw.n_times / raw.info["sfreq"]),
            "RecordingType": "continuous"}


def bad_reasons(report: dict[str, Any]) -> dict[str, str]:
    """Why each bad channel is bad, from the cleaning report's ``BadChannels``."""
    bad = report.get("BadChannels") or {}
    out = {n: "flat signal" for n in bad.get("flat", [])}
    out.update({n: "noisy signal" for n in bad.get("noisy", [])})
    return out


def write_preproc_eeg(raw: mne.io.BaseRaw, dest: str | os.PathLike, report: dict[str, Any],
                      onsets: np.ndarray | None = None, first_volume: int = 0
                      ) -> tuple[Path, dict[str, Any]]:
    """Write the cleaned EEG at ``dest`` (``…_desc-preproc_eeg.vhdr`` or ``.fif``) and its TSVs.

    Every file is written into a hidden temporary folder beside ``dest`` and renamed into place
    (the header names its data and marker files, so they are written under their final names).

    Returns
    -------
    path, fields
        The data file and the sidecar fields to add (:func:`bids_eeg_fields`).
    """
    dest = Path(dest)
    stem = dest.name[: -len("_eeg" + dest.suffix)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=dest.parent) as tmp:
        tmp_dir = Path(tmp)
        if dest.suffix == ".vhdr":
            mne.export.export_raw(tmp_dir / dest.name, raw, fmt="brainvision", overwrite=True,
                                  verbose="error")
        else:
            raw.save(tmp_dir / dest.name, overwrite=True, verbose="error")
        channels_table(raw, bad_reasons(report)).to_csv(
            tmp_dir / f"{stem}_channels.tsv", sep="\t", index=False, na_rep="n/a")
        if onsets is not None:
            events_table(onsets, raw.info["sfreq"], first_volume).to_csv(
                tmp_dir / f"{stem}_events.tsv", sep="\t", index=False, float_format="%.6f")
        for f in tmp_dir.iterdir():
            final = dest.parent / f.name
            # An identical file is left alone, so a rerun keeps its time stamp and hard links.
            if not (final.is_file() and filecmp.cmp(f, final, shallow=False)):
                os.replace(f, final)
    return dest, bids_eeg_fields(raw, report)
