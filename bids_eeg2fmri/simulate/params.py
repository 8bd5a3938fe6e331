"""Every option of the simulator in one typed dataclass, its presets and its checks.

The catalogue below ties each latent source to one EEG rhythm, the scalp position its rhythm is
strongest at, and one Harvard-Oxford region whose BOLD it drives. The first ``sources`` entries
are driven; the remaining entries and the :data:`CONTROL_REGIONS` stay un-driven so that tests
and model reports have negative controls.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

#: EEG bands (Hz) the simulated rhythms live in.
BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 12.0),
    "beta": (13.0, 30.0), "gamma": (30.0, 45.0),
}


@dataclass(frozen=True)
class SourceSpec:
    """One latent source: its name, EEG band, centre electrode and atlas region."""

    name: str
    band: str
    centre: str
    region: str


#: Sources in the order they are switched on by ``sources=K``.
SOURCE_CATALOGUE: tuple[SourceSpec, ...] = (
    SourceSpec("occipital_alpha", "alpha", "Oz", "Left_Occipital_Pole"),
    SourceSpec("frontal_theta", "theta", "Fz", "Right_Frontal_Pole"),
    SourceSpec("central_beta", "beta", "C3", "Left_Precentral_Gyrus"),
    SourceSpec("temporal_delta", "delta", "T7", "Left_Temporal_Pole"),
    SourceSpec("right_central_beta", "beta", "C4", "Right_Precentral_Gyrus"),
    SourceSpec("right_temporal_delta", "delta", "T8", "Right_Temporal_Pole"),
    SourceSpec("parietal_gamma", "gamma", "Pz", "Left_Superior_Parietal_Lobule"),
    SourceSpec("lateral_frontal_theta", "theta", "F7",
               "Left_Inferior_Frontal_Gyrus_pars_triangularis"),
)

#: Regions that no source can drive (neighbours of driven ones: a leak would show).
CONTROL_REGIONS: tuple[str, ...] = ("Right_Occipital_Pole", "Left_Frontal_Pole")

SLICE_ORDERS = ("interleaved", "sequential", "multiband")
#: Shortest time the simulated scanner needs for one slice (or one multiband shot), seconds.
MIN_SLICE_DURATION = 0.02
#: Highest EEG sampling rate the simulated amplifier offers (BrainAmp MR: 5 kHz).
MAX_SFREQ = 5000.0
_MARKER = re.compile(r"^[^,\r\n]+$")


@dataclass(frozen=True)
class SimulationParams:
    """All options of one simulated dataset; defaults give the demo size.

    Attributes
    ----------
    subjects, eeg_only_subjects, fmri_only_subjects
        Participants with both modalities, with EEG only and with fMRI only (numbered in
        that order: ``sub-01`` … ).
    sessions, runs
        Sessions per participant (1 = no ``ses`` entity) and runs per session.
    volumes, grid, voxel_size, tr
        BOLD volumes per run (dummy scans included), EPI matrix (slices along the third axis),
        voxel size in mm and repetition time in s.
    acquisition_time
        Time to acquire all slices of one volume (s); ``None`` means the whole TR.
    slice_order, multiband_factor
        ``interleaved`` (Siemens order), ``sequential`` (ascending) or ``multiband``
        (``multiband_factor`` slices per shot, shots interleaved).
    dummy_scans, dummy_overshoot
        Leading volumes with a T1-saturation overshoot (not announced in any sidecar) and the
        fractional overshoot of the first one (it halves and more with every volume).
    snr, physio_noise, drift, bold_amplitude
        Grey-matter baseline over the thermal noise SD; SD of the physiological fluctuation and
        of the slow drift (fractions of baseline); BOLD change per unit of source.
    motion_scale, obliquity_deg
        Multiplier of the head-motion model (0 = still head); largest EPI tilt in degrees.
    slab_follows_head
        Plan the EPI slab on the brain, as an operator does on the localiser: the head's
        rotation carries the slab and ``obliquity_deg`` is the tilt from the brain's axes. Off:
        the tilt is from the scanner's axes whatever the head's rotation, so a thin slab can sit
        ~20° off the brain and miss anterior-inferior cortex.
    max_rotation_deg, max_translation_mm, max_scale, warp_mm
        Ranges of the subject's affine (rotation, translation, scale fraction) and the largest
        displacement of its smooth non-linear warp relative to MNI152.
    sources
        Number of latent sources (1 … 8), switched on in :data:`SOURCE_CATALOGUE` order.
    channels, sfreq, line_freq
        EEG channels (standard 10-20 positions), sampling rate (Hz), power-line frequency.
    eeg_lead, eeg_tail
        Seconds of EEG before the first volume and after the last volume ends.
    gradient_artifact, gradient_amplitude, gradient_jitter
        Add the MR gradient artifact; its peak over channels (µV); SD of its timing jitter (s).
    bcg, bcg_amplitude, heart_rate
        Add the ballistocardiogram and an ``ECG`` channel; BCG peak (µV); mean heart rate (bpm).
    volume_marker
        Volume trigger: ``R128`` (→ ``Response/R128``), ``S  1`` (→ Stimulus), any other name
        (→ type ``Comment``) or an explicit ``Type/Description``.
    truth_resolution
        Voxel size (mm) of the MNI-space noiseless BOLD in the ground truth.
    group_effect
        0 (default): no cohorts. Above 0: every second participant is a ``patient`` (the others
        ``control``, column ``cohort`` of ``participants.tsv``) whose first source modulates its
        rhythm and drives its region ``1 − group_effect`` times as strongly (an attenuated
        rhythm and coupling: the difference ``--classify cohort`` should find).
    seed
        Seed of the one random generator everything is drawn from.
    """

    subjects: int = 3
    eeg_only_subjects: int = 0
    fmri_only_subjects: int = 0
    sessions: int = 1
    runs: int = 1
    volumes: int = 100
    grid: tuple[int, int, int] = (40, 40, 24)
    voxel_size: tuple[float, float, float] = (5.0, 5.0, 6.0)
    tr: float = 2.16
    acquisition_time: float | None = None
    slice_order: str = "interleaved"
    multiband_factor: int = 1
    dummy_scans: int = 3
    dummy_overshoot: float = 0.8
    snr: float = 80.0
    physio_noise: float = 0.01
    drift: float = 0.01
    bold_amplitude: float = 0.02
    motion_scale: float = 1.0
    obliquity_deg: float = 12.0
    slab_follows_head: bool = False
    max_rotation_deg: float = 10.0
    max_translation_mm: float = 10.0
    max_scale: float = 0.08
    warp_mm: float = 4.0
    sources: int = 4
    channels: int = 32
    sfreq: float = 500.0
    line_freq: float = 50.0
    eeg_lead: float = 5.0
    eeg_tail: float = 5.0
    gradient_artifact: bool = False
    gradient_amplitude: float = 5000.0
    gradient_jitter: float = 2e-5
    bcg: bool = False
    bcg_amplitude: float = 60.0
    heart_rate: float = 66.0
    volume_marker: str = "R128"
    truth_resolution: int = 4
    group_effect: float = 0.0
    seed: int = 0
    task: str = field(default="rest")

    # ----------------------------------------------------------------- derived quantities
    @property
    def n_participants(self) -> int:
        """All participants, whatever their modalities."""
        return self.subjects + self.eeg_only_subjects + self.fmri_only_subjects

    @property
    def n_slices(self) -> int:
        """Slices per volume (third grid axis)."""
        return int(self.grid[2])

    @property
    def ta(self) -> float:
        """Acquisition time of one volume's slices (s)."""
        return float(self.tr if self.acquisition_time is None else self.acquisition_time)

    @property
    def mb(self) -> int:
        """Slices acquired together (1 unless ``slice_order`` is multiband)."""
        return int(self.multiband_factor) if self.slice_order == "multiband" else 1

    @property
    def n_shots(self) -> int:
        """Excitations per volume: slices divided by the multiband factor."""
        return self.n_slices // self.mb

    @property
    def slice_period(self) -> float:
        """Time of one shot (s): the period of the gradient artifact."""
        return self.ta / self.n_shots

    @property
    def source_specs(self) -> tuple[SourceSpec, ...]:
        """The driven sources."""
        return SOURCE_CATALOGUE[: self.sources]

    @property
    def region_names(self) -> tuple[str, ...]:
        """Every reported region: the catalogue's (driven first) then the controls."""
        return tuple(s.region for s in SOURCE_CATALOGUE) + CONTROL_REGIONS

    @property
    def highest_frequency(self) -> float:
        """Highest frequency the EEG simulation puts power at on purpose (bands, line noise)."""
        return max([BANDS[s.band][1] for s in self.source_specs] + [self.line_freq])

    def cohort(self, index: int) -> str | None:
        """``control`` or ``patient`` for the 0-based participant ``index`` (None without a
        group effect)."""
        if not self.group_effect:
            return None
        return "patient" if index % 2 else "control"

    def coupling(self, index: int) -> list[float]:
        """Per driven source, how strongly it modulates its rhythm and drives its region."""
        out = [1.0] * self.sources
        if self.cohort(index) == "patient":
            out[0] = 1.0 - float(self.group_effect)
        return out

    def participant_group(self, index: int) -> str:
        """``eegfmri``, ``eeg`` or ``fmri`` for the 0-based participant ``index``."""
        if index < self.subjects:
            return "eegfmri"
        if index < self.subjects + self.eeg_only_subjects:
            return "eeg"
        return "fmri"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every option."""
        out = dataclasses.asdict(self)
        out["grid"] = list(self.grid)
        out["voxel_size"] = list(self.voxel_size)
        return out

    # ------------------------------------------------------------------------ checks
    def validate(self) -> SimulationParams:
        """Check every option; raise :class:`UsageError` with one line naming the first problem.

        Returns
        -------
        SimulationParams
            ``self``, so that ``params.validate()`` can be chained.
        """
        for name in ("subjects", "eeg_only_subjects", "fmri_only_subjects", "dummy_scans", "seed"):
            if int(getattr(self, name)) < 0:
                raise UsageError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")
        for name in ("sessions", "runs", "volumes", "channels", "multiband_factor"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"--{_flag(name)} must be 1 or more, got {getattr(self, name)}")
        if self.n_participants < 1:
            raise UsageError("the dataset needs at least one participant")
        if self.n_participants > 999:
            raise UsageError(f"at most 999 participants, got {self.n_participants}")
        if len(self.grid) != 3 or any(int(g) < 2 for g in self.grid):
            raise UsageError(f"--grid needs three sizes of 2 or more, got {list(self.grid)}")
        if len(self.voxel_size) != 3 or any(not float(v) > 0 for v in self.voxel_size):
            raise UsageError(f"--voxel-size needs three positive sizes, got {list(self.voxel_size)}")
        for name in ("tr", "snr", "sfreq", "line_freq", "heart_rate", "gradient_amplitude",
                     "bcg_amplitude", "eeg_lead", "eeg_tail"):
            if not float(getattr(self, name)) > 0:
                raise UsageError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("motion_scale", "physio_noise", "drift", "bold_amplitude", "dummy_overshoot",
                     "gradient_jitter", "obliquity_deg", "max_rotation_deg",
                     "max_translation_mm", "max_scale", "warp_mm"):
            if not float(getattr(self, name)) >= 0:
                raise UsageError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")
        if self.dummy_scans >= self.volumes:
            raise UsageError(f"--dummy-scans {self.dummy_scans} leaves no volume of the "
                             f"{self.volumes} simulated")
        if self.slice_order not in SLICE_ORDERS:
            raise UsageError(f"--slice-order must be one of {', '.join(SLICE_ORDERS)}, "
                             f"got {self.slice_order!r}")
        if self.multiband_factor > 1 and self.slice_order != "multiband":
            raise UsageError("--multiband-factor above 1 needs --slice-order multiband")
        if self.n_slices % self.mb:
            raise UsageError(f"--multiband-factor {self.mb} does not divide the "
                             f"{self.n_slices} slices")
        if self.acquisition_time is not None and not self.acquisition_time > 0:
            raise UsageError(f"--acquisition-time must be positive, got {self.acquisition_time}")
        if self.ta > self.tr + 1e-9:
            raise UsageError(f"--tr {self.tr} s is shorter than the slice times: the slices "
                             f"take {self.ta} s")
        if self.slice_period < MIN_SLICE_DURATION - 1e-12:
            raise UsageError(
                f"--tr {self.tr} s is shorter than the slice times: {self.n_shots} shots need "
                f"at least {self.n_shots * MIN_SLICE_DURATION:.3g} s "
                f"({MIN_SLICE_DURATION * 1000:g} ms each)")
        if not 1 <= self.sources <= len(SOURCE_CATALOGUE):
            raise UsageError(
                f"--sources {self.sources} is more than the {len(SOURCE_CATALOGUE)} atlas regions "
                f"sources can drive (1 to {len(SOURCE_CATALOGUE)}; "
                f"{len(CONTROL_REGIONS)} more stay un-driven as controls)"
                if self.sources > 0 else f"--sources must be 1 or more, got {self.sources}")
        if self.sfreq > MAX_SFREQ:
            raise UsageError(f"--sfreq {self.sfreq:g} Hz is above the amplifier's "
                             f"{MAX_SFREQ:g} Hz")
        if self.sfreq <= 2 * self.highest_frequency:
            raise UsageError(f"--sfreq {self.sfreq:g} Hz is below twice the highest simulated "
                             f"frequency ({self.highest_frequency:g} Hz)")
        if not 0.0 <= float(self.group_effect) <= 1.0:
            raise UsageError(f"--group-effect must be between 0 and 1, got {self.group_effect}")
        if self.truth_resolution not in (1, 2, 3, 4, 5, 6, 8):
            raise UsageError(f"--truth-resolution must be 1, 2, 3, 4, 5, 6 or 8 mm, "
                             f"got {self.truth_resolution}")
        if not _MARKER.match(self.volume_marker or "") or self.volume_marker.strip() != \
                self.volume_marker:
            raise UsageError(f"--volume-marker must be a non-empty name without commas or "
                             f"surrounding spaces, got {self.volume_marker!r}")
        if not re.fullmatch(r"[A-Za-z0-9]+", self.task):
            raise UsageError(f"task label must be alphanumeric, got {self.task!r}")
        from .eeg import max_channels

        if self.channels > max_channels():
            raise UsageError(f"--channels {self.channels} is more than the {max_channels()} "
                             f"positions of the 10-20 montage")
        return self


def _flag(name: str) -> str:
    return {"tr": "tr", "sfreq": "sfreq"}.get(name, name.replace("_", "-"))


#: Named presets; ``demo`` is the dataclass defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    "realistic": {"subjects": 1, "volumes": 300, "grid": (64, 64, 30),
                  "voxel_size": (3.3, 3.3, 4.0), "channels": 64, "sfreq": 5000.0,
                  "gradient_artifact": True, "bcg": True, "truth_resolution": 4},
}


def preset(name: str, **overrides: Any) -> SimulationParams:
    """Return the named preset's parameters with ``overrides`` applied (not yet validated).

    Parameters
    ----------
    name
        ``demo`` or ``realistic``.
    **overrides
        Fields of :class:`SimulationParams`.
    """
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    return SimulationParams(**values)


def marker_type_and_description(marker: str) -> tuple[str, str]:
    """Split a volume-marker option into the BrainVision marker type and description.

    ``R128`` → (``Response``, ``R128``); ``S  1`` → (``Stimulus``, ``S  1``); ``Type/Desc`` is
    taken as given; any other name becomes a ``Comment`` marker.
    """
    if "/" in marker:
        mtype, desc = marker.split("/", 1)
        return mtype, desc
    if re.fullmatch(r"R\s*\d+", marker):
        return "Response", marker
    if re.fullmatch(r"S\s*\d+", marker):
        return "Stimulus", marker
    return "Comment", marker
