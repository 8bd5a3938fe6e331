"""Raw EEG whose band power follows the learning-core generator's spectrogram (``eeg2fmri_sim``).

Each channel is a sum of sinusoids at the generator's frequencies with random phases; the amplitude
of frequency ``f`` in frame ``k`` is ``exp((P − P̄)/2)`` with ``P`` the generated log power of that
channel, frequency and frame and ``P̄`` its run mean (every band has the same average power, so the
modulation, not the baseline, carries the information), plus white noise. The result has the raw
layout of :mod:`bids_eeg2fmri.data.raw_eeg`: ``(volumes, channels, 1, TR × sfreq)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bids_eeg2fmri.data.raw_eeg import raw_spec
from bids_eeg2fmri.data.windows import DataSpec, RunArrays
from eeg2fmri_sim import simulate

SFREQ = 64.0


def to_raw(runs: list[RunArrays], spec: DataSpec, *, sfreq: float = SFREQ, noise: float = 0.5,
           seed: int = 0) -> tuple[list[RunArrays], DataSpec]:
    rng = np.random.default_rng(seed)
    n = int(round(spec.tr * sfreq))
    freqs = np.asarray(spec.frequencies)
    out = []
    for run in runs:
        p = np.asarray(run.eeg, dtype=float)                      # (V, C, F, K)
        v, c, f, k = p.shape
        amp = np.exp((p - p.mean(axis=(0, 3), keepdims=True)) / 2)
        # Hold each frame's amplitude over its share of the TR's samples.
        amp = np.repeat(amp.transpose(0, 3, 1, 2).reshape(v * k, c, f), -(-n // k), axis=0)
        amp = amp.reshape(v, -1, c, f)[:, :n].reshape(v * n, c, f)
        t = np.arange(v * n) / sfreq
        phase = rng.uniform(0, 2 * np.pi, size=(c, f))
        x = (amp * np.sin(2 * np.pi * freqs * t[:, None, None] + phase)).sum(axis=2)
        x = x + noise * rng.normal(size=x.shape)
        eeg = x.reshape(v, n, c).transpose(0, 2, 1)[:, :, None, :].astype(np.float32)
        out.append(dataclasses.replace(run, eeg=eeg))
    return out, raw_spec(spec, (1.0, min(30.0, sfreq / 2 - 1)), sfreq, n)


def simulate_raw(**kwargs) -> tuple[list[RunArrays], DataSpec, dict]:
    """:func:`eeg2fmri_sim.simulate` with the spectrogram turned into raw EEG."""
    runs, spec, info = simulate(**kwargs)
    runs, spec = to_raw(runs, spec)
    return runs, spec, info
