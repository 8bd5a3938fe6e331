"""Array-level generator of region BOLD and EEG spectrograms for the fMRI→EEG tests.

It follows the simulator's generative model (``bids_eeg2fmri.simulate``) at the level the models
see, using its own pieces: latent sources are ``simulate.sources.lowpass_noise`` (no power above
0.1 Hz) on the 10 Hz source grid, the haemodynamic response is ``canonical_hrf`` and the EEG
envelope is ``exp(ENVELOPE_GAIN · s)``, i.e. log power linear in the source.

- Source 0 modulates **alpha** in the ``occipital`` channels and drives GM region ``R1`` with a
  negative sign (alpha falls when BOLD rises); source 1 modulates **beta** in ``central`` and drives
  ``R2``; source 2 modulates **theta** in ``frontal`` and shows in no BOLD (a distractor: theta is
  not predictable from fMRI); delta carries nothing. Regions ``R3…`` are un-driven.
- Every region and the non-GM part share a global physiological fluctuation (larger in non-GM,
  like CSF/white-matter signal), so the non-GM series is a nuisance regressor that helps.
- Each subject has its own haemodynamic delay (−1.5…+2.5 s around the canonical peak), coupling
  weights, channel gains and spectral baseline: what subject-specific fine-tuning can learn.
- ``eeg_truth`` is the noiseless spectrogram; measured EEG adds white dB noise per STFT frame.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from bids_eeg2fmri.data.windows import DataSpec, RunArrays
from bids_eeg2fmri.simulate.sources import (ENVELOPE_GAIN, SOURCE_CUTOFF, SOURCE_SFREQ,
                                            canonical_hrf, lowpass_noise)

BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}
DRIVEN_CELLS = ("alpha_occipital", "beta_central")
UNDRIVEN_CELLS = ("theta_frontal", "delta_occipital", "delta_central")
DRIVER = {"alpha_occipital": "R1", "beta_central": "R2"}
NON_GM = "non-GM"


def _ar1(rng: np.random.Generator, n: int, phi: float, size: int) -> np.ndarray:
    x = lfilter([1.0], [1.0, -phi], rng.normal(size=(size, n)), axis=1)
    return (x / x.std(axis=1, keepdims=True)).T


def simulate(n_subjects: int = 5, n_volumes: int = 200, *, tr: float = 2.0, n_gm: int = 5,
             n_frames: int = 2, eeg_noise_db: float = 3.0, bold_noise: float = 0.5,
             global_noise: float = 0.8, dummies: int = 2, delay_range: tuple[float, float] = (-1.5, 2.5),
             seed: int = 0) -> tuple[list[RunArrays], DataSpec, dict]:
    """Simulate one run per subject.

    Returns
    -------
    runs : list of RunArrays
        ``bold`` ``(volumes, n_gm + 1)`` (GM regions ``R1…``, then ``non-GM``), ``eeg``
        ``(volumes, 6, 8, n_frames)`` log power in dB, ``eeg_truth`` the noiseless spectrogram.
    spec : DataSpec
    info : dict
        ``bands``, ``groups`` (channel group → channel names), ``delays`` per subject.
    """
    rng = np.random.default_rng(seed)
    channels = ["O1", "O2", "Fz", "F3", "C3", "C4"]
    groups = {"occipital": ["O1", "O2"], "frontal": ["Fz", "F3"], "central": ["C3", "C4"]}
    freqs = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0])
    fidx = {b: (freqs >= lo) & (freqs < hi) for b, (lo, hi) in BANDS.items()}
    load = np.zeros((3, len(channels), len(freqs)))
    load[0][np.ix_([0, 1], np.flatnonzero(fidx["alpha"]))] = 1.0
    load[1][np.ix_([4, 5], np.flatnonzero(fidx["beta"]))] = 1.0
    load[2][np.ix_([2, 3], np.flatnonzero(fidx["theta"]))] = 1.0
    # Log power in dB of an amplitude envelope exp(g·s): 20·log10(e)·g per unit source.
    db_per_unit = 20.0 * np.log10(np.e) * ENVELOPE_GAIN
    names = [f"R{i + 1}" for i in range(n_gm)] + [NON_GM]
    dt = 1.0 / SOURCE_SFREQ
    runs, delays = [], {}
    for s in range(n_subjects):
        subject = f"{s + 1:02d}"
        delay = float(rng.uniform(*delay_range))
        delays[subject] = delay
        hrf = canonical_hrf(dt)
        shift = int(round(delay / dt))
        hrf = np.concatenate([np.zeros(max(shift, 0)), hrf[max(-shift, 0):]])
        base = rng.normal(scale=4.0, size=(len(channels), len(freqs))) + 20.0
        gain = rng.uniform(0.7, 1.4, size=(len(channels), 1))
        weights = rng.uniform(0.7, 1.3, size=2)
        pad = 40.0
        n_src = int(round((n_volumes * tr + pad) * SOURCE_SFREQ))
        src = lowpass_noise(rng, n_src, 3, SOURCE_SFREQ, SOURCE_CUTOFF)        # (n_src, 3)
        t_src = np.arange(n_src) * dt - pad
        frame_t = (np.arange(n_volumes)[:, None] * tr
                   + (np.arange(n_frames)[None, :] + 0.5) * tr / n_frames).ravel()
        s_frames = np.stack([np.interp(frame_t, t_src, src[:, k]) for k in range(3)], axis=1)
        truth = base[None] + db_per_unit * np.einsum("tk,kcf->tcf", s_frames, load) * gain[None]
        eeg = truth + eeg_noise_db * rng.normal(size=truth.shape)
        shape4 = (n_volumes, n_frames, len(channels), len(freqs))
        truth = truth.reshape(shape4).transpose(0, 2, 3, 1)
        eeg = eeg.reshape(shape4).transpose(0, 2, 3, 1)
        vol_t = np.arange(n_volumes) * tr
        conv = np.stack([np.interp(vol_t, t_src, np.convolve(src[:, k], hrf)[:n_src] * dt)
                         for k in range(2)], axis=1)
        conv /= conv.std(axis=0)
        glob = lowpass_noise(rng, n_volumes, 1, 1.0 / tr, 0.2)[:, 0]
        bold = np.zeros((n_volumes, n_gm + 1))
        bold[:, 0] = -weights[0] * conv[:, 0]
        bold[:, 1] = weights[1] * conv[:, 1]
        bold[:, :n_gm] += global_noise * glob[:, None] + bold_noise * _ar1(rng, n_volumes, 0.3, n_gm)
        bold[:, n_gm] = 1.5 * global_noise * glob + 0.2 * bold_noise * rng.normal(size=n_volumes)
        bold[:dummies] += 5.0
        bold[dummies:] -= bold[dummies:].mean(axis=0)
        runs.append(RunArrays(eeg=eeg.astype(np.float32), bold=bold.astype(np.float32),
                              subject=subject, retained=np.arange(n_volumes) >= dummies,
                              eeg_truth=truth.astype(np.float32)))
    spec = DataSpec(channels, freqs, n_frames, tr, "regions", n_gm + 1, region_names=names)
    return runs, spec, {"bands": BANDS, "groups": groups, "delays": delays}
