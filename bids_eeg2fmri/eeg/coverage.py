"""Which BOLD volumes an EEG recording covers, and whether that is enough to use the run.

Real recordings rarely cover the BOLD run exactly: corrected exports are segmented from a block
marker, recordings stop a few samples before the last volume's TR is over, markers stop before
the scan does. The volumes whose whole TR lies inside the recording are kept; the others are left
out of the spectrogram (the group level then drops them in both modalities, see
:func:`~bids_eeg2fmri.data.readers.read_spectrogram`). A run is refused only when the covered
fraction falls below ``--min-eeg-coverage``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError

log = logging.getLogger("bids_eeg2fmri.eeg")


def describe(volumes: Sequence[int], n_volumes: int | None) -> dict[str, Any]:
    """The ``EEGCoverage`` sidecar block: how many volumes, and which range, the EEG covers.

    Parameters
    ----------
    volumes
        0-based BOLD volume indices that have EEG.
    n_volumes
        Volumes of the BOLD run (``None`` for an EEG-only run: the covered ones).
    """
    vols = np.asarray(volumes, dtype=int)
    total = int(n_volumes) if n_volumes is not None else int(vols.size)
    return {"BOLDVolumes": total, "CoveredVolumes": int(vols.size),
            "CoveredRange": [int(vols.min()), int(vols.max())] if vols.size else None,
            "UncoveredVolumes": total - int(vols.size),
            "Fraction": round(vols.size / total, 4) if total else 0.0}


def covered_volumes(samples: np.ndarray, first_volume: int, *, n_times: int, sfreq: float,
                    tr: float, n_volumes: int | None, min_fraction: float,
                    path: str | os.PathLike | None = None
                    ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Keep the volumes whose whole TR lies inside the recording; refuse too little coverage.

    Parameters
    ----------
    samples
        Volume onsets in samples of the recording; ``samples[0]`` is BOLD volume ``first_volume``.
    n_times, sfreq
        Length and sampling frequency of the recording.
    tr
        Repetition time in seconds.
    n_volumes
        Volumes of the BOLD run; ``None`` for an EEG-only run.
    min_fraction
        Least fraction of the BOLD volumes the EEG must cover (``--min-eeg-coverage``).
    path
        The EEG file, named in errors and warnings.

    Returns
    -------
    samples : ndarray
        Onsets of the covered volumes (consecutive).
    first : int
        BOLD volume of the first of them.
    coverage : dict
        :func:`describe` of the covered volumes.

    Raises
    ------
    DataError
        When fewer than ``min_fraction`` of the BOLD volumes are covered.
    """
    samples = np.asarray(samples, dtype=np.int64)
    # Same length as the spectral segments: a volume whose TR is cut short by even one sample
    # cannot give the same frames as the others.
    length = int(np.floor(tr * sfreq + 1e-9))
    keep = (samples >= 0) & (samples + length <= n_times)
    idx = np.flatnonzero(keep)
    total = n_volumes if n_volumes is not None else samples.size
    coverage = describe(first_volume + idx, total)
    if total and idx.size / total < min_fraction:
        raise DataError(f"the EEG covers {idx.size} of the {total} BOLD volumes "
                        f"({idx.size / total:.0%}), below --min-eeg-coverage {min_fraction:g}",
                        path)
    if coverage["UncoveredVolumes"]:
        lo, hi = coverage["CoveredRange"]
        log.warning("%s: the EEG covers volumes %d-%d of %d; the other %d are left out",
                    path or "EEG", lo, hi, total, coverage["UncoveredVolumes"])
    return samples[idx], first_volume + (int(idx[0]) if idx.size else 0), coverage
