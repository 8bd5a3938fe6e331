"""Slice-timing correction by Fourier phase shift.

Each slice of an EPI volume is acquired at its own time within the TR (BIDS ``SliceTiming``). This
module shifts every slice's voxel time series so that all slices represent the same instant, the
reference time ``ref_fraction × TR`` after the start of each volume.

The shift is a phase ramp in the frequency domain (exact band-limited interpolation). Two things
keep the circular FFT from wrapping the end of the series onto its start: the linear trend is
removed before the transform and added back at the shifted times, and the detrended series is
padded on both sides by point-symmetric reflection tapered to zero.

Written here because no library we depend on does it in Python: nilearn has no slice-timing
correction, and nipype only wraps FSL ``slicetimer``, AFNI ``3dTshift`` and SPM, binaries the image
does not ship (the Dockerfile installs only Python and libgomp).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import fft as sp_fft

SLICE_AXES = {"i": 0, "j": 1, "k": 2}


def slice_axis(direction: str) -> int:
    """Return the array axis (0, 1, 2) that a BIDS ``SliceEncodingDirection`` names.

    Parameters
    ----------
    direction
        ``i``, ``j``, ``k``, optionally followed by ``-``.

    Returns
    -------
    int
    """
    if direction not in ("i", "j", "k", "i-", "j-", "k-"):
        raise ValueError(f"SliceEncodingDirection must be i, j or k (optionally with -), got {direction!r}")
    return SLICE_AXES[direction[0]]


def slice_times_by_index(slice_timing: Sequence[float], direction: str = "k") -> np.ndarray:
    """Acquisition time of each slice, ordered by the slice's array index.

    BIDS: with a negative direction (``k-``) the first SliceTiming entry belongs to the slice with
    the largest index, so the list is reversed.
    """
    times = np.asarray(slice_timing, dtype=float)
    return times[::-1].copy() if direction.endswith("-") else times


def fourier_shift(series: np.ndarray, shift: float | np.ndarray, *, pad: int | None = None) -> np.ndarray:
    """Shift time series along their last axis by a fraction of a sample.

    ``out[..., n]`` estimates the signal at sample position ``n + shift``: a positive shift reads the
    series later in time.

    Parameters
    ----------
    series
        Array whose last axis is time (at least 2 samples).
    shift
        Shift in samples; a scalar or an array broadcastable to ``series.shape[:-1]``.
    pad
        Reflected padding on each side, in samples; default ``min(n - 1, max(16, n // 2))``.

    Returns
    -------
    numpy.ndarray
        float64 array of the same shape.
    """
    x = np.asarray(series, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        raise ValueError("a time series needs at least 2 samples to be shifted")
    shift = np.asarray(shift, dtype=np.float64)[..., None]
    # Remove the straight line through the series (least squares) so the padded signal starts and
    # ends near zero; the line is added back at the shifted sample times, which is exact for it.
    t = np.arange(n, dtype=np.float64)
    tc = t - t.mean()
    slope = (x @ tc) / float(tc @ tc)
    mean = x.mean(axis=-1)
    resid = x - mean[..., None] - slope[..., None] * tc
    pad = min(n - 1, max(16, n // 2)) if pad is None else int(min(max(pad, 0), n - 1))
    if pad > 0:
        # Point-symmetric (odd) reflection continues the series with matching value *and* slope, and
        # a raised-cosine taper brings the padding to zero at the outer ends, so the periodic signal
        # the FFT assumes has no jump where the end wraps onto the start.
        left = 2.0 * resid[..., :1] - resid[..., 1:pad + 1][..., ::-1]
        right = 2.0 * resid[..., -1:] - resid[..., -pad - 1:-1][..., ::-1]
        rise = np.sin(np.pi / 2 * (np.arange(pad) + 0.5) / pad) ** 2
        resid = np.concatenate([left * rise, resid, right * rise[::-1]], axis=-1)
    length = sp_fft.next_fast_len(resid.shape[-1], real=True)
    spec = sp_fft.rfft(resid, n=length, axis=-1)
    freqs = np.fft.rfftfreq(length)
    phase = np.exp(2j * np.pi * freqs * shift)
    if length % 2 == 0:
        # The Nyquist bin of a real signal must stay real: keep only the cosine part of its shift.
        phase[..., -1] = np.cos(np.pi * shift[..., 0])
    shifted = sp_fft.irfft(spec * phase, n=length, axis=-1)[..., pad:pad + n]
    return shifted + mean[..., None] + slope[..., None] * (tc + shift)


def slice_time_correct(data: np.ndarray, slice_timing: Sequence[float], repetition_time: float, *,
                       slice_encoding_direction: str = "k", ref_fraction: float = 0.5,
                       ) -> np.ndarray:
    """Shift every slice of a 4-D series to the reference time ``ref_fraction × TR``.

    Slices that share an acquisition time (multiband) are processed together; the work is
    vectorised over all voxels of those slices.

    Parameters
    ----------
    data
        4-D array ``(x, y, z, t)``.
    slice_timing
        BIDS ``SliceTiming`` in seconds, one entry per slice along the slice axis.
    repetition_time
        TR in seconds.
    slice_encoding_direction
        BIDS ``SliceEncodingDirection`` (``i``, ``j``, ``k``, ``i-``, ``j-``, ``k-``).
    ref_fraction
        Reference time as a fraction of the TR (0–1).

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape; each slice's value at volume ``n`` estimates the signal at
        ``n × TR + ref_fraction × TR``.
    """
    if data.ndim != 4:
        raise ValueError(f"slice-timing correction needs a 4-D array, got shape {data.shape}")
    if repetition_time <= 0:
        raise ValueError(f"repetition time must be positive, got {repetition_time}")
    if not 0.0 <= ref_fraction <= 1.0:
        raise ValueError(f"ref_fraction must lie in [0, 1], got {ref_fraction}")
    axis = slice_axis(slice_encoding_direction)
    times = slice_times_by_index(slice_timing, slice_encoding_direction)
    if times.size != data.shape[axis]:
        raise ValueError(f"{times.size} slice times for {data.shape[axis]} slices along axis {axis}")
    ref_time = ref_fraction * repetition_time
    out = np.empty(data.shape, dtype=np.float32)
    moved_in = np.moveaxis(data, axis, 0)
    moved_out = np.moveaxis(out, axis, 0)
    # Group slices by acquisition time (rounded to 0.1 µs) so multiband slices share one FFT call.
    keys = np.round(times, 7)
    for value in np.unique(keys):
        idx = np.flatnonzero(keys == value)
        shift = (ref_time - float(times[idx[0]])) / repetition_time
        block = moved_in[idx]
        if abs(shift) < 1e-9:
            moved_out[idx] = block
            continue
        moved_out[idx] = fourier_shift(block, shift)
    return out
