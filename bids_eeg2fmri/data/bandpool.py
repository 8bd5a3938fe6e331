"""Band power pooled from the per-TR spectrogram: the compact EEG input of EEG→fMRI models.

Every STFT bin and frame of a window gives tens of thousands of inputs per sample; the mean log
power of a few bands per channel and TR is the classic EEG-fMRI regressor and leaves the models
far fewer, less noisy inputs. The pooling is recorded in the model's :class:`DataSpec`
(``eeg_bands``) so that applying the model pools new spectrograms the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DataError
from .windows import DataSpec, RunArrays


def pool_bands(eeg: np.ndarray, frequencies: Sequence[float],
               bands: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Mean over each band's bins ``[lo, hi)`` and over the frames of a TR.

    Parameters
    ----------
    eeg
        ``(n_volumes, n_channels, n_freqs, n_frames)`` spectrogram (log power).
    frequencies
        The bins' frequencies in Hz.
    bands
        Band name → ``(lo, hi)`` in Hz, in the order of the output axis.

    Returns
    -------
    ndarray
        ``(n_volumes, n_channels, n_bands, 1)`` float32.

    Raises
    ------
    DataError
        For a band that holds no bin.
    """
    f = np.asarray(frequencies, dtype=float)
    eeg = np.asarray(eeg, dtype=np.float32)
    out = []
    for name, (lo, hi) in bands.items():
        sel = (f >= lo) & (f < hi)
        if not sel.any():
            raise DataError(f"EEG band {name} [{lo:g}, {hi:g}) Hz holds no spectrogram frequency "
                            f"({f.min():g}-{f.max():g} Hz)")
        out.append(eeg[:, :, sel].mean(axis=(2, 3)))
    return np.stack(out, axis=2)[..., None].astype(np.float32)


def band_spec(spec: DataSpec, bands: Mapping[str, Sequence[float]]) -> DataSpec:
    """``spec`` after :func:`pool_bands`: band centres as frequencies, one frame per TR."""
    plain = {str(k): [float(v[0]), float(v[1])] for k, v in bands.items()}
    return dataclasses.replace(
        spec, frequencies=[(lo + hi) / 2 for lo, hi in plain.values()], n_frames=1,
        eeg_bands={"bands": plain, "frequencies": list(spec.frequencies),
                   "n_frames": int(spec.n_frames)})


def pool_runs(runs: Sequence[RunArrays], spec: DataSpec,
              bands: Mapping[str, Sequence[float]]) -> tuple[list[RunArrays], DataSpec]:
    """The runs with their spectrogram (and noiseless spectrogram, when simulated) pooled into
    ``bands``, and their description."""
    pooled = [dataclasses.replace(
        run, eeg=pool_bands(run.eeg[:], spec.frequencies, bands),
        eeg_truth=None if run.eeg_truth is None
        else pool_bands(run.eeg_truth[:], spec.frequencies, bands)) for run in runs]
    return pooled, band_spec(spec, bands)
