"""Latent neural sources shared by both modalities, and the canonical HRF.

All series here live on one *source grid*: ``SOURCE_SFREQ`` samples per second, in seconds
relative to the onset of the first BOLD volume (negative before it). The grid starts early
enough that the HRF convolution has reached steady state before the first volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import gamma

SOURCE_SFREQ = 10.0
#: Seconds of source history before the EEG starts, so that HRF∗source is in steady state.
HRF_PAD = 40.0
#: Slowest variation of the latent sources is below this frequency (Hz).
SOURCE_CUTOFF = 0.1
#: Envelope gain: EEG amplitude = A_band · exp(ENVELOPE_GAIN · source).
ENVELOPE_GAIN = 0.35


def canonical_hrf(dt: float, duration: float = 32.0) -> np.ndarray:
    """SPM's canonical double-gamma haemodynamic response, normalised to unit area.

    Parameters
    ----------
    dt
        Sampling interval in seconds.
    duration
        Length of the kernel in seconds.

    Returns
    -------
    numpy.ndarray
        ``h`` with ``h.sum() * dt == 1``: response peak near 5 s, undershoot near 15 s
        (gamma shapes 6 and 16, undershoot ratio 1/6, dispersion 1 s).
    """
    t = np.arange(0.0, duration, dt)
    h = gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0
    return h / (h.sum() * dt)


@dataclass
class Sources:
    """Latent sources of one run on the source grid.

    Attributes
    ----------
    times
        (n,) seconds relative to the first volume onset.
    latent
        (n, K) unit-variance smooth sources.
    hrf
        (n, K) ``canonical_hrf ∗ latent`` (unit-less; BOLD change = amplitude × this).
    envelopes
        (n, K) EEG amplitude envelope of each source's rhythm at its centre, µV.
    """

    times: np.ndarray
    latent: np.ndarray
    hrf: np.ndarray
    envelopes: np.ndarray


def source_grid(t_first: float, t_last: float) -> np.ndarray:
    """Times of the source grid covering ``[t_first - HRF_PAD, t_last + 1]`` on multiples of dt."""
    dt = 1.0 / SOURCE_SFREQ
    start = np.floor((t_first - HRF_PAD) / dt)
    stop = np.ceil((t_last + 1.0) / dt)
    return np.arange(start, stop + 1) * dt


def lowpass_noise(rng: np.random.Generator, n: int, n_series: int, sfreq: float,
                  cutoff: float) -> np.ndarray:
    """Unit-variance Gaussian noise with no power above ``cutoff`` Hz (cosine taper below it).

    Returns
    -------
    numpy.ndarray
        (n, n_series) float64.
    """
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    taper = np.clip((cutoff - freqs) / (0.2 * cutoff), 0.0, 1.0)
    taper = 0.5 - 0.5 * np.cos(np.pi * taper)
    taper[0] = 0.0
    spec = (rng.standard_normal((n_series, freqs.size))
            + 1j * rng.standard_normal((n_series, freqs.size))) * taper
    out = np.fft.irfft(spec, n=n, axis=1).T
    out -= out.mean(axis=0)
    out /= np.maximum(out.std(axis=0), 1e-12)
    return out


def simulate_sources(rng: np.random.Generator, times: np.ndarray, n_sources: int,
                     amplitudes: np.ndarray, coupling: np.ndarray | None = None) -> Sources:
    """Draw ``n_sources`` latent sources: band-limited noise below 0.1 Hz plus sparse events.

    Parameters
    ----------
    rng
        The run's source generator.
    times
        Source grid from :func:`source_grid`.
    n_sources
        K.
    amplitudes
        (K,) EEG amplitude (µV) of each source's rhythm at envelope 1 (source value 0).
    coupling
        (K,) how strongly each source modulates its rhythm and drives its region (1 = fully;
        the simulator's group effect lowers it in patients); None for all 1.

    Returns
    -------
    Sources
    """
    n = times.size
    dt = 1.0 / SOURCE_SFREQ
    latent = lowpass_noise(rng, n, n_sources, SOURCE_SFREQ, SOURCE_CUTOFF)
    # Occasional events: Gaussian bursts (1–2 s wide), about one per 40 s per source.
    duration = n * dt
    for k in range(n_sources):
        n_events = rng.poisson(duration / 40.0)
        centres = rng.uniform(times[0], times[-1], n_events)
        widths = rng.uniform(1.0, 2.0, n_events)
        heights = rng.normal(1.5, 0.4, n_events)
        for c, w, a in zip(centres, widths, heights):
            latent[:, k] += a * np.exp(-0.5 * ((times - c) / w) ** 2)
    latent -= latent.mean(axis=0)
    latent /= latent.std(axis=0)
    k_gain = np.ones(n_sources) if coupling is None else np.asarray(coupling, dtype=float)
    h = canonical_hrf(dt)
    conv = k_gain[None, :] * np.stack([np.convolve(latent[:, k], h)[:n] * dt
                                       for k in range(n_sources)], axis=1)
    env = amplitudes[None, :] * np.exp(ENVELOPE_GAIN * k_gain[None, :] * latent)
    return Sources(times=times, latent=latent, hrf=conv, envelopes=env)


def interp_columns(t: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of each column of ``values`` (n, K) at times ``t`` → (len(t), K)."""
    return np.stack([np.interp(t, times, values[:, k]) for k in range(values.shape[1])], axis=-1)
