"""Paired EEG→BOLD samples: which volumes are targets and which EEG they see.

A run is held as arrays aligned by volume: the EEG spectrogram of every volume (``n_volumes ×
n_channels × n_frequencies × n_frames``: the STFT frames falling inside that TR) and the BOLD target
of every volume (``n_volumes × n_bold``: masked voxels of the model grid, or atlas regions).

Sample ``t`` pairs BOLD volume ``t`` with the EEG of volumes ``t − lag − window + 1 … t − lag``: the
``window`` TRs that precede the target (and include it when ``lag = 0``), because the haemodynamic
response integrates about 20 s of neural activity. A sample exists only when

- volume ``t`` is retained (dummy scans are not) and not censored for motion (FD above a threshold),
- its whole EEG window lies inside the same run and every EEG volume of it is valid — windows never
  cross runs, and the first ``window − 1`` volumes of a run have too short a history,
- for models that also read previous BOLD volumes (``history > 0``), those volumes are retained.

The fMRI→EEG direction cuts samples the other way round (:class:`~.sequences.SequenceSpec`,
re-exported here): a window of ``window`` BOLD volumes is the input and the EEG of ``horizon`` TRs
inside it the target. :func:`index_samples` and the splits take either spec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import GroupConfig
from ..errors import DataError
from .sequences import SequenceSpec  # noqa: F401  (re-exported: fMRI→EEG samples)
from .spans import HRF_REACH_S, window_all as _window_all

TARGET_KINDS = ("voxels", "regions")


@dataclass
class RunArrays:
    """One run of EEG and BOLD, aligned volume by volume.

    Attributes
    ----------
    eeg
        ``(n_volumes, n_channels, n_freqs, n_frames)`` spectrogram, or ``(n_volumes, n_channels,
        n_freqs)`` band power (read as one frame). Any array-like with ``shape`` and slicing: a numpy
        array, a ``np.memmap``, an h5py dataset.
    bold
        ``(n_volumes, n_bold)`` BOLD series (masked voxels or regions; the targets of EEG→fMRI,
        the inputs of fMRI→EEG), array-like as ``eeg``.
    subject, run
        Labels; ``run`` keeps runs of one subject apart (use ``ses-1_run-2`` style strings freely).
    retained
        ``(n_volumes,)`` bool, False for volumes that are not targets (dummy scans). Default: all.
    eeg_valid
        ``(n_volumes,)`` bool, False where no EEG exists for a volume. Default: all.
    fd
        ``(n_volumes,)`` framewise displacement in mm for motion censoring, optional.
    truth
        ``(n_volumes, n_bold)`` noiseless BOLD (simulated data only), optional.
    eeg_truth
        Noiseless EEG spectrogram, the shape of ``eeg`` (simulated data only), optional: the noise
        ceiling of the fMRI→EEG direction.
    """

    eeg: Any
    bold: Any
    subject: str
    run: str = "1"
    retained: np.ndarray | None = None
    eeg_valid: np.ndarray | None = None
    fd: np.ndarray | None = None
    truth: Any = None
    eeg_truth: Any = None

    def __post_init__(self) -> None:
        if len(self.eeg.shape) == 3:
            # Band power has no frame axis: view it as a spectrogram with one frame per TR.
            self.eeg = np.asarray(self.eeg)[..., None]
            if self.eeg_truth is not None and len(self.eeg_truth.shape) == 3:
                self.eeg_truth = np.asarray(self.eeg_truth)[..., None]
        n = self.n_volumes
        self.retained = _mask(self.retained, n, "retained", self)
        self.eeg_valid = _mask(self.eeg_valid, n, "eeg_valid", self)
        if len(self.eeg.shape) != 4:
            raise DataError(f"{self.key}: EEG must be volumes × channels × frequencies × frames, "
                            f"got shape {tuple(self.eeg.shape)}")
        if len(self.bold.shape) != 2 or self.bold.shape[0] != n:
            raise DataError(f"{self.key}: BOLD must be volumes × targets with {n} volumes like the "
                            f"EEG, got shape {tuple(self.bold.shape)}")
        if self.fd is not None:
            self.fd = np.nan_to_num(np.asarray(self.fd, dtype=float), nan=0.0)
            if self.fd.shape != (n,):
                raise DataError(f"{self.key}: framewise displacement has {self.fd.shape[0]} values "
                                f"for {n} volumes")
        if self.truth is not None and tuple(self.truth.shape) != tuple(self.bold.shape):
            raise DataError(f"{self.key}: noiseless truth shape {tuple(self.truth.shape)} differs "
                            f"from BOLD {tuple(self.bold.shape)}")
        if self.eeg_truth is not None and tuple(self.eeg_truth.shape) != tuple(self.eeg.shape):
            raise DataError(f"{self.key}: noiseless EEG shape {tuple(self.eeg_truth.shape)} differs "
                            f"from the EEG {tuple(self.eeg.shape)}")

    @property
    def key(self) -> str:
        """``sub-<subject>_<entities>`` (the run label may already be ``task-rest_run-1``)."""
        return f"sub-{self.subject}_" + (self.run if "-" in str(self.run) else f"run-{self.run}")

    n_volumes = property(lambda self: int(self.eeg.shape[0]))

    def check_finite(self) -> None:
        """Raise :class:`DataError` when retained BOLD or valid EEG holds NaN or infinity."""
        eeg = np.asarray(self.eeg[np.flatnonzero(self.eeg_valid)]) if not self.eeg_valid.all() \
            else np.asarray(self.eeg[:])
        bad = ~np.isfinite(eeg).reshape(len(eeg), -1).all(axis=1)
        if bad.any():
            vol = np.flatnonzero(self.eeg_valid)[np.argmax(bad)]
            raise DataError(f"{self.key}: EEG holds NaN or infinite values (first at volume {vol}); "
                            "mark missing EEG with eeg_valid instead")
        bold = np.asarray(self.bold[:])[self.retained]
        bad = ~np.isfinite(bold).all(axis=1)
        if bad.any():
            vol = np.flatnonzero(self.retained)[np.argmax(bad)]
            raise DataError(f"{self.key}: BOLD holds NaN or infinite values (first at volume {vol})")


def _mask(value: np.ndarray | None, n: int, name: str, run: RunArrays) -> np.ndarray:
    if value is None:
        return np.ones(n, dtype=bool)
    value = np.asarray(value, dtype=bool)
    if value.shape != (n,):
        raise DataError(f"{run.key}: {name} has shape {value.shape}, expected ({n},)")
    return value


@dataclass
class DataSpec:
    """What a model was trained on: checked against any data it is later applied to.

    Attributes
    ----------
    channels
        EEG channel names, in the order of the EEG channel axis.
    frequencies
        Spectrogram frequencies in Hz (band names' centre frequencies for band power).
    n_frames
        STFT frames per TR.
    tr
        Repetition time in seconds.
    target
        ``"voxels"`` or ``"regions"``.
    n_bold
        BOLD series per volume (masked voxels or regions): the targets of EEG→fMRI, the inputs of
        fMRI→EEG.
    mask
        For voxels: the 3-D boolean brain mask of the model grid; targets are ``grid[mask]`` in C
        order.
    affine
        For voxels: the grid's 4 × 4 voxel-to-world affine.
    region_names
        For regions: the atlas region names; optional.
    labels
        Optional ``(n_bold,)`` integer region label of each BOLD series, for region-wise metrics.
    eeg_bands
        Set when the EEG axis holds band power pooled from a spectrogram
        (:func:`bids_eeg2fmri.data.bandpool.band_spec`): ``{"bands": {name: [lo, hi]},
        "frequencies": [...], "n_frames": k}`` — the bands and the spectrogram they were pooled
        from, which new data must match before it is pooled the same way.
    eeg_raw
        Set for raw EEG samples (:mod:`.raw_eeg`): ``{"band": [lo, hi], "sfreq": Hz}``.
    """

    channels: list[str]
    frequencies: list[float]
    n_frames: int
    tr: float
    target: str
    n_bold: int
    mask: np.ndarray | None = None
    affine: np.ndarray | None = None
    region_names: list[str] | None = None
    labels: np.ndarray | None = field(default=None, repr=False)
    eeg_bands: dict[str, Any] | None = None
    eeg_raw: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.channels = [str(c) for c in self.channels]
        self.frequencies = [float(f) for f in self.frequencies]
        if self.target not in TARGET_KINDS:
            raise DataError(f"target must be one of {TARGET_KINDS}, got {self.target!r}")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.ndim != 3 or int(self.mask.sum()) != self.n_bold:
                raise DataError(f"the grid mask holds {int(self.mask.sum())} voxels but the BOLD "
                                f"targets have {self.n_bold}")
        if self.affine is not None:
            self.affine = np.asarray(self.affine, dtype=float).reshape(4, 4)

    grid_shape = property(lambda self: None if self.mask is None else tuple(self.mask.shape))

    @property
    def eeg_shape(self) -> tuple[int, int, int]:
        """``(n_channels, n_freqs, n_frames)`` of one EEG volume."""
        return len(self.channels), len(self.frequencies), self.n_frames

    def check_run(self, run: RunArrays) -> None:
        """Raise :class:`DataError` unless ``run``'s array shapes fit this spec."""
        if tuple(run.eeg.shape[1:]) != self.eeg_shape:
            raise DataError(f"{run.key}: EEG volumes have shape {tuple(run.eeg.shape[1:])} "
                            f"(channels, frequencies, frames); expected {self.eeg_shape}")
        if run.bold.shape[1] != self.n_bold:
            raise DataError(f"{run.key}: BOLD has {run.bold.shape[1]} targets, expected "
                            f"{self.n_bold} ({self.target})")

    def check_compatible(self, other: "DataSpec") -> None:
        """Raise :class:`DataError` when ``other`` (new data) differs from this (training) spec.

        Channel names and order, frequencies, frames per TR, target kind and the grid (mask and
        affine) or region list must agree: a model is tied to its input and output layout.
        """
        if self.channels != other.channels:
            missing = [c for c in self.channels if c not in other.channels]
            extra = [c for c in other.channels if c not in self.channels]
            detail = (f"missing {missing[:5]}" if missing else "") + \
                     (f" extra {extra[:5]}" if extra else "") or "same names in a different order"
            raise DataError(f"EEG channels differ from the model's ({len(self.channels)} trained, "
                            f"{len(other.channels)} given): {detail.strip()}")
        if (self.eeg_bands is None) != (other.eeg_bands is None):
            kind = {True: "band power", False: "the full spectrogram"}
            raise DataError(f"the model reads {kind[self.eeg_bands is not None]}, the data hold "
                            f"{kind[other.eeg_bands is not None]}")
        if self.eeg_raw != other.eeg_raw:
            raise DataError(f"raw EEG {other.eeg_raw} given, the model reads {self.eeg_raw}")
        if self.eeg_bands is not None:
            src, given = self.eeg_bands, other.eeg_bands
            if src["bands"] != given["bands"]:
                raise DataError(f"EEG bands {given['bands']} differ from the model's "
                                f"{src['bands']}")
            if len(src["frequencies"]) != len(given["frequencies"]) or not np.allclose(
                    src["frequencies"], given["frequencies"], atol=1e-6) \
                    or src["n_frames"] != given["n_frames"]:
                raise DataError(f"the spectrogram the bands are pooled from ("
                                f"{_span(given['frequencies'])}, {given['n_frames']} frames) "
                                f"differs from the model's ({_span(src['frequencies'])}, "
                                f"{src['n_frames']} frames); use the same STFT settings")
        if len(self.frequencies) != len(other.frequencies) or not np.allclose(
                self.frequencies, other.frequencies, atol=1e-6):
            raise DataError(f"spectrogram frequencies differ from the model's "
                            f"({_span(self.frequencies)} trained, {_span(other.frequencies)} given)")
        if self.n_frames != other.n_frames:
            raise DataError(f"{other.n_frames} STFT frames per TR given, the model was trained on "
                            f"{self.n_frames}; use the same STFT window and overlap")
        if not math.isclose(self.tr, other.tr, rel_tol=1e-3):
            raise DataError(f"repetition time {other.tr} s differs from the model's {self.tr} s")
        if self.target != other.target:
            raise DataError(f"the model predicts {self.target}, the data hold {other.target}")
        if self.target == "voxels":
            if self.grid_shape != other.grid_shape or (
                    self.mask is not None and not np.array_equal(self.mask, other.mask)):
                raise DataError(f"the BOLD grid {other.grid_shape} (mask of {other.n_bold} "
                                f"voxels) differs from the model's {self.grid_shape} "
                                f"({self.n_bold} voxels); resample to the model grid")
            if self.affine is not None and other.affine is not None and not np.allclose(
                    self.affine, other.affine, atol=1e-3):
                raise DataError("the BOLD grid's affine differs from the model's; resample the "
                                "data to the model grid")
        elif self.n_bold != other.n_bold or (
                self.region_names and other.region_names and self.region_names != other.region_names):
            raise DataError(f"the {other.n_bold} regions given differ from the model's "
                            f"{self.n_bold}; use the same atlas")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, stored in checkpoints."""
        return {"channels": self.channels, "frequencies": self.frequencies,
                "n_frames": self.n_frames, "tr": self.tr, "target": self.target,
                "n_bold": self.n_bold,
                "mask": None if self.mask is None else _pack_mask(self.mask),
                "affine": None if self.affine is None else self.affine.tolist(),
                "region_names": self.region_names,
                "labels": None if self.labels is None else np.asarray(self.labels).tolist(),
                "eeg_bands": self.eeg_bands, "eeg_raw": self.eeg_raw}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSpec":
        d = dict(d)
        if "n_targets" in d:  # a model saved before DataSpec.n_targets became n_bold
            d["n_bold"] = d.pop("n_targets")
        if d.get("mask") is not None:
            d["mask"] = _unpack_mask(d["mask"])
        if d.get("labels") is not None:
            d["labels"] = np.asarray(d["labels"])
        return cls(**d)


def _span(freqs: Sequence[float]) -> str:
    return f"{len(freqs)} bins {min(freqs):g}-{max(freqs):g} Hz" if len(freqs) else "none"


def _pack_mask(mask: np.ndarray) -> dict[str, Any]:
    return {"shape": list(mask.shape), "true": np.flatnonzero(mask.ravel()).tolist()}


def _unpack_mask(packed: dict[str, Any]) -> np.ndarray:
    mask = np.zeros(int(np.prod(packed["shape"])), dtype=bool)
    mask[np.asarray(packed["true"], dtype=int)] = True
    return mask.reshape(packed["shape"])


@dataclass(frozen=True)
class WindowSpec:
    """How samples are cut.

    Attributes
    ----------
    window
        EEG volumes (TRs) per sample.
    lag
        TRs between the last EEG volume of the window and the target volume (0: the window ends
        with the target volume's own EEG).
    history
        Previous BOLD volumes handed to models that decode autoregressively over volumes
        (``transformer-cnn``); 0 for the others. Only sets which samples exist, so use the same value
        for all models that are compared.
    fd_threshold
        Censor target volumes whose framewise displacement exceeds this (mm); None keeps all.
    """

    window: int
    lag: int = 0
    history: int = 0
    fd_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.window < 1 or self.lag < 0 or self.history < 0:
            raise DataError(f"window must be >= 1 TR and lag, history >= 0; got window="
                            f"{self.window}, lag={self.lag}, history={self.history}")
        if self.history >= self.window + self.lag:
            raise DataError("history must be shorter than window + lag so that the previous BOLD "
                            "volumes lie inside the sample's own span")

    @classmethod
    def from_seconds(cls, tr: float, window_s: float = GroupConfig.window_s,
                     **kwargs: Any) -> "WindowSpec":
        """A spec whose window covers at least ``window_s`` seconds (``--window``) at ``tr``."""
        return cls(window=max(1, math.ceil(window_s / tr - 1e-9)), **kwargs)

    def span(self) -> int:
        """Volumes from the first EEG volume of a sample to its target, inclusive."""
        return self.window + self.lag

    def min_buffer(self, tr: float, hrf_reach_s: float = HRF_REACH_S) -> int:
        """Smallest gap (in volumes) between train and test targets that shares no information.

        Two samples share EEG when their windows overlap (``span`` volumes) and share BOLD signal
        through the haemodynamic response for another ``hrf_reach_s`` seconds.
        """
        return self.span() + math.ceil(hrf_reach_s / tr)

    def sample_volumes(self, run: RunArrays) -> np.ndarray:
        """The volumes of ``run`` that are sample targets (:func:`target_volumes`)."""
        return target_volumes(run, self)

    def window_start(self, volumes: np.ndarray) -> np.ndarray:
        """First EEG volume of the windows of samples named (targeted) by ``volumes``."""
        return np.asarray(volumes) - self.span() + 1

    def describe(self, tr: float) -> dict[str, Any]:
        """The window's fields and its length in seconds, for the model card."""
        return {**asdict(self), "window_seconds": self.window * tr}


def target_volumes(run: RunArrays, spec: WindowSpec) -> np.ndarray:
    """Indices of the volumes of ``run`` that are targets of a sample (see the module docstring)."""
    t = np.arange(run.n_volumes)
    start = t - spec.span() + 1
    ok = run.retained & (start >= 0)
    if spec.fd_threshold is not None and run.fd is not None:
        ok &= ~(run.fd > spec.fd_threshold)
    # Every EEG volume of the window must exist.
    ok[ok] &= _window_all(run.eeg_valid, spec.window)[start[ok]]
    for h in range(1, spec.history + 1):
        ok[h:] &= run.retained[:-h]
        ok[:h] = False
    return t[ok]


def index_samples(runs: Sequence[RunArrays], spec: WindowSpec | SequenceSpec) -> pd.DataFrame:
    """Table of every sample: one row per target volume (first predicted TR for fMRI→EEG).

    Returns
    -------
    pandas.DataFrame
        Columns ``run_index`` (position in ``runs``), ``subject``, ``run``, ``volume``; rows in run
        order, then time order.

    Raises
    ------
    DataError
        When no run yields a sample (all runs shorter than the window).
    """
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise DataError(f"runs given twice: {', '.join(dup)}")
    frames = []
    for i, run in enumerate(runs):
        vols = spec.sample_volumes(run)
        frames.append(pd.DataFrame({"run_index": i, "subject": run.subject, "run": run.run,
                                    "volume": vols}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if table.empty:
        raise DataError(f"no samples: every run is shorter than the {spec.span()}-volume window "
                        "or has no retained volumes")
    return table


def eeg_volumes(volumes: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Sorted unique EEG volume indices that the samples with target ``volumes`` read."""
    offsets = np.arange(spec.window) - spec.span() + 1
    return np.unique((np.asarray(volumes)[:, None] + offsets[None, :]).ravel())
