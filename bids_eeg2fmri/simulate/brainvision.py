"""BrainVision writer (``.vhdr``/``.vmrk``/``.eeg``) that streams the data in chunks.

The files follow pybv's layout (BrainVision Core Data Format 1.0, multiplexed little-endian
float32, µV) but the binary is written chunk by chunk: pybv converts the whole recording at
once, which at 64 channels × 5 kHz × 11 min costs several GB. Markers are 1-based positions
as the format requires; a fixed ``New Segment`` date keeps the files byte-identical.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._version import __version__
from ..bids.derivatives import atomic_path, atomic_write_text

CHUNK = 1 << 16


def _escape(text: str) -> str:
    return text.replace(",", r"\1")


def write_brainvision(vhdr: str | os.PathLike, data: np.ndarray, sfreq: float,
                      ch_names: Sequence[str], *, events: Sequence[tuple[int, str, str]] = (),
                      meas_date: str = "20000101120000000000", reference: str = "") -> Path:
    """Write one BrainVision recording.

    Parameters
    ----------
    vhdr
        Path of the header; the marker and data files take the same stem.
    data
        (n_channels, n_samples) voltages in µV.
    sfreq
        Sampling rate in Hz.
    ch_names
        Channel names.
    events
        ``(sample, type, description)`` per marker, sample 0-based.
    meas_date
        ``YYYYMMDDhhmmssuuuuuu`` of the ``New Segment`` marker.
    reference
        Reference channel name written for every channel (empty: unspecified).

    Returns
    -------
    pathlib.Path
        The header path.
    """
    vhdr = Path(vhdr)
    stem = vhdr.name[: -len(".vhdr")]
    eeg_name, vmrk_name = f"{stem}.eeg", f"{stem}.vmrk"
    with atomic_path(vhdr.with_name(eeg_name)) as tmp, open(tmp, "wb") as fh:
        for start in range(0, data.shape[1], CHUNK):
            block = np.ascontiguousarray(data[:, start:start + CHUNK].T, dtype="<f4")
            fh.write(block.tobytes())
    lines = [
        "Brain Vision Data Exchange Marker File, Version 1.0",
        f"; Written by bids_eeg2fmri {__version__} (simulated recording)",
        "", "[Common Infos]", "Codepage=UTF-8", f"DataFile={eeg_name}", "", "[Marker Infos]",
        "; Each entry: Mk<Marker number>=<Type>,<Description>,<Position in data points>,",
        ";             <Size in data points>, <Channel number (0 = marker is related to all "
        "channels)>",
        ";             <Date (YYYYMMDDhhmmssuuuuuu)>",
        "; Fields are delimited by commas, some fields might be omitted (empty).",
        r'; Commas in type or description text are coded as "\1".',
        f"Mk1=New Segment,,1,1,0,{meas_date}",
    ]
    for i, (sample, mtype, desc) in enumerate(events, start=2):
        lines.append(f"Mk{i}={_escape(mtype)},{_escape(desc)},{int(sample) + 1},1,0")
    atomic_write_text(vhdr.with_name(vmrk_name), "\n".join(lines) + "\n")
    head = [
        "Brain Vision Data Exchange Header File Version 1.0",
        f"; Written by bids_eeg2fmri {__version__} (simulated recording)",
        "", "[Common Infos]", "Codepage=UTF-8", f"DataFile={eeg_name}",
        f"MarkerFile={vmrk_name}", "DataFormat=BINARY",
        "; Data orientation: MULTIPLEXED=ch1,pt1, ch2,pt1 ...", "DataOrientation=MULTIPLEXED",
        f"NumberOfChannels={len(ch_names)}", "; Sampling interval in microseconds",
        f"SamplingInterval={np.format_float_positional(1e6 / sfreq, trim='-')}", "",
        "[Binary Infos]", "BinaryFormat=IEEE_FLOAT_32", "", "[Channel Infos]",
        "; Each entry: Ch<Channel number>=<Name>,<Reference channel name>,",
        '; <Resolution in "Unit">,<Unit>, Future extensions..',
        "; Fields are delimited by commas, some fields might be omitted (empty).",
        r'; Commas in channel names are coded as "\1".',
    ]
    for i, name in enumerate(ch_names, start=1):
        head.append(f"Ch{i}={_escape(name)},{_escape(reference)},1,µV")
    head += ["", "[Comment]", ""]
    atomic_write_text(vhdr, "\n".join(head) + "\n")
    return vhdr
