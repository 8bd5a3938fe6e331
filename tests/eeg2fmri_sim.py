"""A small array-level generator of paired EEG spectrograms and BOLD, for the learning-core tests.

It follows the simulator's model (``bids_eeg2fmri.simulate``) at the level the models see:

1. Latent neural sources: smooth random series (AR(1) over STFT frames, unit variance). Sources
   ``0`` and ``1`` drive the BOLD; a third source shows only in the EEG (a distractor).
2. EEG: the log-power spectrogram of channel group ``g`` in band ``b`` follows its source
   (``volumes × channels × frequencies × frames``); each subject has its own per-channel baseline
   and gain (why EEG is normalised per subject); white measurement noise on every bin.
3. BOLD truth: source ``k`` (averaged per TR) convolved with the canonical double-gamma HRF, in
   region ``k + 1``; source 0 acts with a negative sign (alpha power falls when BOLD rises).
   Regions 3 and 4 are un-driven (truth 0).
4. Measured BOLD: voxel weight × region truth + temporally autocorrelated (AR(1)) noise per voxel,
   (plus noise shared by a region's voxels), or per region for ``target="regions"``. Values are signal change with zero mean per run.

With ``group_effect`` > 0 every second subject is a ``patient`` (the others ``control``,
``info["cohort"]``): in patients source 0 loads ``1 − group_effect`` times as strongly on its
channel group and band, and drives its region as much less (an attenuated rhythm and coupling). Per-subject EEG z-scoring
leaves the difference in the spectrogram's covariance (the driven bins co-vary more), not in its mean.

With ``coupled=False`` the BOLD sources are drawn independently of the EEG ones: nothing can be
predicted, which the leakage test needs. ``info["ceiling_region"]`` is the noise ceiling of the
region-averaged measurement (its r with the noiseless region truth).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from bids_eeg2fmri.data.windows import DataSpec, RunArrays
from bids_eeg2fmri.simulate.sources import canonical_hrf  # the simulator's own HRF

GRID = (6, 7, 6)
DRIVEN = (1, 2)
UNDRIVEN = (3, 4)




def _ar1(rng: np.random.Generator, n: int, phi: float, size: int = 1) -> np.ndarray:
    x = lfilter([1.0], [1.0, -phi], rng.normal(size=(size, n)), axis=1)
    return (x / x.std(axis=1, keepdims=True)).T


def region_labels(grid: tuple[int, int, int] = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Brain mask (an ellipsoid) and a 4-region label volume: quadrants in x and y."""
    idx = np.indices(grid).astype(float)
    centre = (np.array(grid, dtype=float) - 1) / 2
    radius = np.array(grid, dtype=float) / 2 + 0.3
    mask = (((idx - centre[:, None, None, None]) / radius[:, None, None, None]) ** 2).sum(0) <= 1.0
    labels = 1 + (idx[0] >= grid[0] / 2).astype(int) + 2 * (idx[1] >= grid[1] / 2).astype(int)
    return mask, np.where(mask, labels, 0)


def simulate(n_subjects: int = 4, n_volumes: int = 160, *, tr: float = 2.0, n_channels: int = 8,
             n_freqs: int = 6, n_frames: int = 2, target: str = "voxels", coupled: bool = True,
             eeg_noise: float = 0.7, bold_noise: float = 1.0, region_noise: float = 0.7, dummies: int = 2,
             n_runs: int = 1, group_effect: float = 0.0,
             seed: int = 0) -> tuple[list[RunArrays], DataSpec, dict]:
    """Simulate ``n_subjects × n_runs`` runs.

    Returns
    -------
    runs : list of RunArrays
    spec : DataSpec
    info : dict
        ``labels`` (per target region label), ``driven`` and ``undriven`` region labels.
    """
    rng = np.random.default_rng(seed)
    channels = [f"E{i + 1}" for i in range(n_channels)]
    freqs = np.linspace(2.0, 2.0 + 4.0 * (n_freqs - 1), n_freqs)
    half_c, third_f = n_channels // 2, max(1, n_freqs // 3)
    # Loading of each source on (channel, frequency): the channel groups and bands it modulates.
    load = np.zeros((3, n_channels, n_freqs))
    load[0, :half_c, third_f:2 * third_f] = 1.0
    load[1, half_c:, 2 * third_f:] = 1.0
    load[2, half_c // 2:half_c + half_c // 2, :third_f] = 1.0
    hrf = canonical_hrf(tr)
    mask, label_vol = region_labels()
    if target == "voxels":
        labels = label_vol[mask]
    else:
        labels = np.arange(1, 5)
    runs, cohort = [], {}
    for s in range(n_subjects):
        subject = f"{s + 1:02d}"
        cohort[subject] = "patient" if s % 2 else "control"
        effect = 1.0 - (group_effect if s % 2 else 0.0)
        subject_load = load.copy()
        subject_load[0] *= effect
        base = rng.normal(scale=3.0, size=(n_channels, n_freqs))
        gain = rng.uniform(0.7, 1.4, size=(n_channels, 1))
        weights = rng.uniform(0.7, 1.3, size=len(labels))
        for r in range(n_runs):
            n_fr = n_volumes * n_frames
            src = _ar1(rng, n_fr, phi=0.9, size=3)                       # (frames, 3)
            eeg = np.einsum("tk,kcf->tcf", src, subject_load) * gain + base
            eeg = eeg + eeg_noise * rng.normal(size=eeg.shape)
            eeg = eeg.reshape(n_volumes, n_frames, n_channels, n_freqs).transpose(0, 2, 3, 1)
            neural = src.reshape(n_volumes, n_frames, 3).mean(axis=1)
            if not coupled:
                neural = _ar1(rng, n_fr, phi=0.9, size=3).reshape(n_volumes, n_frames, 3).mean(1)
            region_truth = np.zeros((n_volumes, 5))
            for k, sign in ((0, -1.0), (1, 1.0)):
                conv = np.convolve(neural[:, k], hrf)[:n_volumes]
                region_truth[:, k + 1] = sign * conv / conv.std() * (effect if k == 0 else 1.0)
            truth = region_truth[:, labels] * weights
            # Noise shared within a region (physiology, vascular) plus independent voxel noise, both
            # autocorrelated: region averaging then cannot average all the noise away.
            shared = _ar1(rng, n_volumes, phi=0.5, size=5)[:, labels] * region_noise
            noise = shared + _ar1(rng, n_volumes, phi=0.5, size=len(labels)) * bold_noise
            bold = truth + noise
            # Signal change: the dummy scans carry the T1 saturation transient, then zero mean.
            bold[:dummies] += 5.0
            bold[dummies:] -= bold[dummies:].mean(axis=0)
            truth = truth - truth[dummies:].mean(axis=0)
            retained = np.arange(n_volumes) >= dummies
            fd = np.abs(rng.normal(scale=0.1, size=n_volumes))
            runs.append(RunArrays(eeg=eeg.astype(np.float32), bold=bold.astype(np.float32),
                                  subject=subject, run=str(r + 1), retained=retained, fd=fd,
                                  truth=truth.astype(np.float32)))
    if target == "voxels":
        spec = DataSpec(channels, freqs, n_frames, tr, "voxels", int(mask.sum()), mask=mask,
                        affine=np.diag([4.0, 4.0, 4.0, 1.0]), labels=labels)
    else:
        spec = DataSpec(channels, freqs, n_frames, tr, "regions", 4,
                        region_names=[f"region{i}" for i in range(1, 5)], labels=labels)
    return runs, spec, {"labels": labels, "driven": DRIVEN, "undriven": UNDRIVEN,
                        "cohort": cohort}
