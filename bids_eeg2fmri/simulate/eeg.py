"""EEG: 1/f background, source-modulated rhythms, line noise, volume triggers, MR artifacts.

Time base: sample ``n`` is ``(n − first_sample) / sfreq`` seconds after the first volume onset.
All voltages are µV and float32; long recordings are filled in fixed-size chunks of samples so
that memory stays near one copy of the recording.

Clean EEG (what the ground truth stores) = mixed 1/f background + Σ_k w_ck·a_k(t)·cos φ_k(t) +
amplifier noise, where ``a_k`` is source ``k``'s envelope, ``φ_k`` a carrier whose frequency
wanders inside the band and ``w_ck = exp(−d²/2σ²)`` the spread from the source's centre
electrode. The recording adds power-line noise and, on request, the gradient and BCG artifacts
(with an ``ECG`` channel).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .params import SimulationParams
from .sources import SOURCE_SFREQ, Sources

#: BrainCap MR order (31 EEG + ECG in the 32-channel cap), then the 64-channel additions.
_CAP_ORDER = (
    "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
    "P8", "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5", "CP6", "TP9",
    "TP10", "POz", "F1", "F2", "C1", "C2", "P1", "P2", "AF3", "AF4", "FC3", "FC4", "CP3", "CP4",
    "PO3", "PO4", "F5", "F6", "C5", "C6", "P5", "P6", "AF7", "AF8", "FT7", "FT8", "TP7", "TP8",
    "PO7", "PO8", "FT9", "FT10", "Fpz", "CPz",
)
#: Recording reference and ground (not recorded channels).
REFERENCE, GROUND = "FCz", "AFz"
#: Old aliases and mastoid/ear positions that are not cap electrodes.
_EXCLUDED = {"T3", "T4", "T5", "T6", "M1", "M2", "A1", "A2", REFERENCE, GROUND}
SPREAD_SIGMA = 0.035  # m, spatial spread of a rhythm around its centre electrode
GROUP_THRESHOLD = 0.5  # channel group of a source: spread weight at least this
BAND_AMPLITUDE = {"delta": 20.0, "theta": 12.0, "alpha": 16.0, "beta": 8.0, "gamma": 4.0}
CARRIER = {"delta": (2.5, 0.7), "theta": (6.0, 1.2), "alpha": (10.0, 1.2), "beta": (20.0, 4.0),
           "gamma": (37.5, 4.0)}
BACKGROUND_RMS = 8.0  # µV, 1/f background per channel
SENSOR_NOISE = 0.7  # µV RMS, amplifier noise
ECG_AMPLITUDE = 400.0  # µV, R wave on the ECG channel
BCG_DELAY = 0.21  # s from the R peak to the pulse artifact
CHUNK = 1 << 18  # samples per chunk


@dataclass(frozen=True)
class Montage:
    """The standard 10-20 montage in MNE's head frame.

    Attributes
    ----------
    order
        Recordable electrode names in cap order.
    names, pos
        Every montage name and its position (m).
    fiducials
        ``NAS``, ``LPA``, ``RPA`` positions (m).
    """

    order: tuple[str, ...]
    names: tuple[str, ...]
    pos: np.ndarray
    fiducials: dict[str, np.ndarray]


@functools.lru_cache(maxsize=1)
def montage() -> Montage:
    """Load the standard 10-20 montage once (``colin27_1020`` is its new MNE name)."""
    import mne

    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() \
        else "standard_1020"
    mont = mne.channels.make_standard_montage(name)
    info = mne.create_info(mont.ch_names, 1000.0, "eeg")
    info.set_montage(mont, on_missing="ignore")
    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    fids = {}
    for d in info["dig"]:
        if d["kind"] == 1:  # FIFFV_POINT_CARDINAL
            fids[{1: "LPA", 2: "NAS", 3: "RPA"}[int(d["ident"])]] = np.asarray(d["r"])
    rest = [n for n in mont.ch_names if n not in _CAP_ORDER and n not in _EXCLUDED]
    return Montage(order=tuple(_CAP_ORDER) + tuple(rest), names=tuple(mont.ch_names), pos=pos,
                   fiducials=fids)


def max_channels() -> int:
    """How many EEG channels the montage offers."""
    return len(montage().order)


def channel_names(n: int) -> list[str]:
    """The first ``n`` channel names in cap order."""
    return list(montage().order[:n])


def positions(names: list[str]) -> np.ndarray:
    """Head-frame positions (m) of the named electrodes (any 10-20 name, cap or not)."""
    mont = montage()
    index = {n: i for i, n in enumerate(mont.names)}
    return mont.pos[[index[n] for n in names]]


@dataclass
class EegTiming:
    """Sample grid of one EEG run.

    Attributes
    ----------
    sfreq, n_samples, first_sample
        Sampling rate, length, and the sample of the first volume onset.
    onsets
        (T,) sample of every volume onset (the volume triggers).
    """

    sfreq: float
    n_samples: int
    first_sample: int
    onsets: np.ndarray

    def times(self, start: int, stop: int) -> np.ndarray:
        """Seconds after the first volume onset of samples ``start … stop − 1``."""
        return (np.arange(start, stop) - self.first_sample) / self.sfreq


def eeg_timing(params: SimulationParams) -> EegTiming:
    """Sample of every volume onset; the EEG runs ``eeg_lead`` before to ``eeg_tail`` after."""
    sf = float(params.sfreq)
    first = int(round(params.eeg_lead * sf))
    onsets = first + np.rint(np.arange(params.volumes) * params.tr * sf).astype(np.int64)
    n = first + int(round(params.volumes * params.tr * sf)) + int(round(params.eeg_tail * sf))
    return EegTiming(sfreq=sf, n_samples=n, first_sample=first, onsets=onsets)


@dataclass
class EegTruth:
    """What the EEG simulation knows and the recording does not say.

    Attributes
    ----------
    weights
        (C, K) spread weight of each source at each channel.
    groups
        Source name → its channel group.
    bands
        Bands with at least one source, in order of first use.
    channel_envelopes
        (B, C, M) true amplitude envelope (µV) per band and channel on the source grid.
    line_amplitudes
        (C_all,) µV of the power-line sinusoid per recorded channel.
    gradient, bcg
        Settings and timings of the artifacts (empty when off).
    """

    weights: np.ndarray
    groups: dict[str, list[str]]
    bands: list[str]
    channel_envelopes: np.ndarray
    line_amplitudes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gradient: dict = field(default_factory=dict)
    bcg: dict = field(default_factory=dict)


def pink_noise(rng: np.random.Generator, n_series: int, n: int, sfreq: float,
               knee: float = 0.5) -> np.ndarray:
    """Unit-variance noise with a 1/f power spectrum (flat below ``knee`` Hz), (n_series, n)."""
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    amp = 1.0 / np.sqrt(np.maximum(freqs, knee))
    amp[0] = 0.0
    out = np.empty((n_series, n), dtype=np.float32)
    for j in range(n_series):
        spec = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * amp
        x = np.fft.irfft(spec, n=n)
        out[j] = x / max(float(x.std()), 1e-12)
    return out


def spread_weights(pos: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(C, K) Gaussian spread of each source's rhythm from its centre over the channels."""
    d2 = ((pos[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * SPREAD_SIGMA ** 2))


def channel_groups(weights: np.ndarray, names: list[str], source_names: list[str],
                   ) -> dict[str, list[str]]:
    """Channels where each source's weight reaches :data:`GROUP_THRESHOLD` (at least one)."""
    out = {}
    for k, src in enumerate(source_names):
        sel = np.flatnonzero(weights[:, k] >= GROUP_THRESHOLD)
        if sel.size == 0:
            sel = np.array([int(np.argmax(weights[:, k]))])
        out[src] = [names[i] for i in sel]
    return out


def simulate_clean(rng: np.random.Generator, params: SimulationParams, sources: Sources,
                   timing: EegTiming, names: list[str], extra_rows: int = 0,
                   ) -> tuple[np.ndarray, EegTruth]:
    """Clean EEG of one run: background, source rhythms and amplifier noise.

    Parameters
    ----------
    rng
        The run's clean-EEG generator.
    params
        Simulation options.
    sources
        The run's latent sources (envelopes on the source grid).
    timing
        Sample grid.
    names
        EEG channel names.
    extra_rows
        Zero rows appended for non-EEG channels (the ECG) that artifacts fill later.

    Returns
    -------
    data, truth
        (C + extra_rows, N) float32 µV and the EEG ground truth.
    """
    n, sf = timing.n_samples, timing.sfreq
    pos = positions(names)
    specs = params.source_specs
    weights = spread_weights(pos, positions([s.centre for s in specs]))
    groups = channel_groups(weights, names, [s.name for s in specs])
    n_bg = min(len(names), 16)
    latent = pink_noise(rng, n_bg, n, sf)
    # Background: a few 1/f generators seen through smooth, overlapping scalp patterns.
    gen_pos = rng.normal(size=(n_bg, 3))
    gen_pos = 0.09 * gen_pos / np.linalg.norm(gen_pos, axis=1, keepdims=True)
    gen_pos[:, 2] = np.abs(gen_pos[:, 2])
    mix = np.exp(-((pos[:, None, :] - gen_pos[None]) ** 2).sum(-1) / (2 * 0.05 ** 2))
    mix += 0.15 * rng.random(mix.shape)
    mix *= BACKGROUND_RMS / np.linalg.norm(mix, axis=1, keepdims=True)
    mix = mix.astype(np.float32)
    # Carriers: frequency wandering inside the band (tanh keeps it there), smooth at 2 s.
    n_src = len(specs)
    ou = np.empty((sources.times.size, n_src))
    rho = np.exp(-1.0 / (2.0 * SOURCE_SFREQ))
    ou[0] = rng.standard_normal(n_src)
    innov = rng.standard_normal(ou.shape) * np.sqrt(1 - rho ** 2)
    for i in range(1, ou.shape[0]):
        ou[i] = rho * ou[i - 1] + innov[i]
    centre = np.array([CARRIER[s.band][0] for s in specs])
    half = np.array([CARRIER[s.band][1] for s in specs])
    inst_freq = centre + half * np.tanh(ou)
    phase = rng.uniform(0, 2 * np.pi, n_src)
    w32 = weights.astype(np.float32)
    data = np.zeros((len(names) + extra_rows, n), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        t = timing.times(start, stop)
        freq = np.stack([np.interp(t, sources.times, inst_freq[:, k]) for k in range(n_src)])
        ph = phase[:, None] + 2 * np.pi * np.cumsum(freq, axis=1) / sf
        phase = ph[:, -1].copy()
        env = np.stack([np.interp(t, sources.times, sources.envelopes[:, k])
                        for k in range(n_src)])
        osc = (env * np.cos(ph)).astype(np.float32)
        block = mix @ latent[:, start:stop] + w32 @ osc
        block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(SENSOR_NOISE)
        data[: len(names), start:stop] = block
    bands = list(dict.fromkeys(s.band for s in specs))
    env_ch = np.zeros((len(bands), len(names), sources.times.size), dtype=np.float32)
    for b, band in enumerate(bands):
        ks = [k for k, s in enumerate(specs) if s.band == band]
        power = sum((weights[:, k][:, None] * sources.envelopes[:, k][None, :]) ** 2 for k in ks)
        env_ch[b] = np.sqrt(power)
    truth = EegTruth(weights=weights, groups=groups, bands=bands, channel_envelopes=env_ch)
    return data, truth


def add_line_noise(rng: np.random.Generator, data: np.ndarray, sfreq: float,
                   line_freq: float) -> np.ndarray:
    """Add the mains sinusoid (and its 3rd harmonic below Nyquist) in place; return amplitudes."""
    amps = rng.uniform(1.0, 5.0, data.shape[0])
    phases = rng.uniform(0, 2 * np.pi, data.shape[0])
    harmonics = [(1, 1.0)] + ([(3, 0.2)] if 3 * line_freq < sfreq / 2 else [])
    for start in range(0, data.shape[1], CHUNK):
        stop = min(start + CHUNK, data.shape[1])
        arg = 2 * np.pi * line_freq * np.arange(start, stop) / sfreq
        for h, scale in harmonics:
            # a·cos(hω n + hφ) = a·cos(hφ)·cos(hω n) − a·sin(hφ)·sin(hω n): two rank-one
            # updates instead of a cosine per channel and sample.
            basis = np.stack([np.cos(h * arg), np.sin(h * arg)]).astype(np.float32)
            coef = np.stack([scale * amps * np.cos(h * phases),
                             -scale * amps * np.sin(h * phases)], axis=1).astype(np.float32)
            data[:, start:stop] += coef @ basis
    return amps


def gradient_waveforms(rng: np.random.Generator, period: float, sfreq: float,
                       oversample: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Three periodic gradient waveforms (x, y, z coils) tabulated over one slice period.

    Returns
    -------
    grid, table
        (L,) phase times in s over ``[0, period)`` and (3, L) waveforms of peak 1.
    """
    n_harm = max(1, int(np.floor(0.45 * sfreq * period)))
    h = np.arange(1, n_harm + 1)
    length = int(np.ceil(period * sfreq)) * oversample
    grid = np.arange(length) * (period / length)
    arg = 2 * np.pi * np.outer(h, grid) / period
    # Spectrum falls as h^-0.8 and rolls off like the amplifier's anti-alias filter (below
    # 0.2·sfreq and 250 Hz, as a BrainAmp MR): the samples then catch the waveform's peaks.
    cutoff = min(0.2 * sfreq, 250.0)
    rolloff = np.exp(-((h / period) / cutoff) ** 2)
    coef = rng.standard_normal((3, 2, n_harm)) * h ** -0.8 * rolloff
    table = coef[:, 0] @ np.cos(arg) + coef[:, 1] @ np.sin(arg)
    table /= np.abs(table).max(axis=1, keepdims=True)
    return grid, table


def add_gradient(rng: np.random.Generator, data: np.ndarray, params: SimulationParams,
                 timing: EegTiming, has_ecg: bool = False) -> dict:
    """Add the MR gradient artifact in place: one waveform per shot, jittered, during scanning.

    The peak over EEG channels and phases equals ``params.gradient_amplitude``; every shot
    ``j`` of volume ``t`` starts at ``t·TR + j·slice_period + jitter`` seconds after the first
    volume onset, jitter ~ N(0, ``gradient_jitter``).

    Returns
    -------
    dict
        ``amplitude_uv``, ``period_s``, ``shots_per_volume``, ``jitter_sd_s``, ``gains`` (C, 3).
    """
    period, n_shots, tr = params.slice_period, params.n_shots, params.tr
    grid, table = gradient_waveforms(rng, period, timing.sfreq)
    gains = rng.normal(size=(data.shape[0], 3))
    if has_ecg:
        gains[-1] *= 1.5  # the ECG electrode sits on the back, far from the cap: larger loop
    n_eeg = data.shape[0] - (1 if has_ecg else 0)
    peak = np.abs(gains[:n_eeg] @ table).max()  # the setting is the peak over EEG channels
    gains *= params.gradient_amplitude / peak
    jitter = rng.normal(0.0, params.gradient_jitter, (params.volumes, n_shots))
    g32 = gains.astype(np.float32)
    scan_end = timing.first_sample + int(np.ceil(params.volumes * tr * timing.sfreq)) + 1
    for start in range(timing.first_sample, min(scan_end, timing.n_samples), CHUNK):
        stop = min(start + CHUNK, scan_end, timing.n_samples)
        t = timing.times(start, stop)
        vol = np.floor(t / tr).astype(np.int64)
        within = t - vol * tr
        shot = np.floor(within / period).astype(np.int64)
        ok = (vol >= 0) & (vol < params.volumes) & (shot < n_shots)
        if not ok.any():
            continue
        tau = within[ok] - shot[ok] * period - jitter[vol[ok], shot[ok]]
        phase = np.mod(tau, period)
        wave = np.stack([np.interp(phase, grid, table[a], period=period) for a in range(3)])
        block = np.zeros((data.shape[0], stop - start), dtype=np.float32)
        block[:, ok] = g32 @ wave.astype(np.float32)
        data[:, start:stop] += block
    return {"amplitude_uv": float(params.gradient_amplitude), "period_s": float(period),
            "shots_per_volume": int(n_shots), "jitter_sd_s": float(params.gradient_jitter),
            "jitter_s": jitter, "gains": gains}


def _ecg_template(tau: np.ndarray) -> np.ndarray:
    """PQRST complex (R = 1 at τ = 0), τ in s."""
    waves = ((0.15, -0.20, 0.025), (-0.12, -0.03, 0.010), (1.0, 0.0, 0.010),
             (-0.25, 0.03, 0.010), (0.30, 0.25, 0.040))
    return sum(a * np.exp(-0.5 * ((tau - c) / w) ** 2) for a, c, w in waves)


def _bcg_templates(tau: np.ndarray) -> np.ndarray:
    """Two pulse-artifact components (2, len(τ)), τ in s after the artifact onset."""
    on = (tau >= 0).astype(float)
    ramp = np.clip(tau / 0.04, 0, 1)
    b1 = on * ramp * np.sin(2 * np.pi * 1.6 * tau) * np.exp(-tau / 0.18)
    b2 = on * ramp * np.sin(2 * np.pi * 3.2 * tau + 0.5) * np.exp(-tau / 0.12)
    return np.stack([b1, b2])


def add_bcg(rng: np.random.Generator, data: np.ndarray, params: SimulationParams,
            timing: EegTiming, names: list[str]) -> dict:
    """Add the ballistocardiogram to the EEG rows and the ECG to the last row, in place.

    Heartbeats follow ``heart_rate`` with respiratory sinus arrhythmia and beat-to-beat
    jitter; each beat adds a PQRST complex on the ECG channel and, ``BCG_DELAY`` later, a
    pulse artifact whose scalp pattern mixes two smooth fields, scaled per beat by ±10 %.

    Returns
    -------
    dict
        ``r_peaks`` (samples), ``delay_s``, ``amplitude_uv``, ``heart_rate_bpm``.
    """
    sf, n = timing.sfreq, timing.n_samples
    rr_mean = 60.0 / params.heart_rate
    t = timing.times(0, 1)[0] + rng.uniform(0, rr_mean)
    t_end = timing.times(n - 1, n)[0]
    peaks = []
    while t < t_end:
        peaks.append(t)
        t += rr_mean * (1 + 0.05 * np.sin(2 * np.pi * 0.25 * t) + rng.normal(0, 0.03))
    peaks = np.asarray(peaks)
    r_samples = np.rint(peaks * sf).astype(np.int64) + timing.first_sample
    pos = positions(names)
    unit = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    dirs = rng.normal(size=(2, 3))
    patterns = unit @ dirs.T + 0.3 * rng.normal(size=(len(names), 2))
    fine = np.linspace(0, 0.8, 801)
    peak = np.abs(patterns @ _bcg_templates(fine)).max()
    patterns *= params.bcg_amplitude / peak
    scales = 1.0 + rng.normal(0, 0.1, peaks.size)
    ecg = np.zeros(n, dtype=np.float32)
    bcg = np.zeros((2, n), dtype=np.float32)
    half = int(round(0.4 * sf))
    span = int(round(0.8 * sf))
    for p, r, s in zip(peaks, r_samples, scales):
        lo, hi = max(r - half, 0), min(r + half, n)
        if lo < hi:
            ecg[lo:hi] += (ECG_AMPLITUDE * _ecg_template(timing.times(lo, hi) - p)).astype(
                np.float32)
        on = r + int(round(BCG_DELAY * sf))
        lo, hi = max(on, 0), min(on + span, n)
        if lo < hi:
            bcg[:, lo:hi] += (s * _bcg_templates(timing.times(lo, hi) - p - BCG_DELAY)).astype(
                np.float32)
    p32 = patterns.astype(np.float32)
    n_eeg = len(names)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        data[:n_eeg, start:stop] += p32 @ bcg[:, start:stop]
    data[n_eeg] += ecg + rng.standard_normal(n, dtype=np.float32) * np.float32(5.0)
    return {"r_peaks": r_samples, "delay_s": BCG_DELAY, "amplitude_uv": float(params.bcg_amplitude),
            "heart_rate_bpm": float(params.heart_rate), "patterns": patterns}
