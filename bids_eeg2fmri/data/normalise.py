"""Normalisers fitted on the training part of a split only.

- EEG: z-score per subject, channel and frequency (as the seed papers normalise each subject's
  spectrogram). Statistics come from the EEG volumes the training samples read. A subject with no
  training samples (the held-out subject of leave-one-subject-out, or an EEG-only participant the
  model is applied to) is standardised with its own EEG statistics: this reads only that subject's
  EEG input — never a BOLD target — exactly what applying the model to new EEG does.
- BOLD: z-score per target (voxel or region) with the training samples' mean and standard
  deviation; predictions are mapped back to the original units before any metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .windows import RunArrays

# Relative floor under standard deviations: constant inputs (a flat channel, a voxel outside the
# brain) are centred but not blown up.
STD_FLOOR = 1e-6


def _floor(std: np.ndarray) -> np.ndarray:
    ref = float(np.max(std)) if std.size and np.max(std) > 0 else 1.0
    return np.maximum(std, STD_FLOOR * ref)


class EEGNormaliser:
    """Per-subject, per-channel, per-frequency z-scoring of EEG spectrogram volumes."""

    def __init__(self) -> None:
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.self_fitted: list[str] = []

    def fit(self, runs: Sequence[RunArrays], volumes: dict[int, np.ndarray]) -> "EEGNormaliser":
        """Fit from the EEG volumes ``volumes[run_index]`` of the training samples.

        Parameters
        ----------
        runs
            All runs.
        volumes
            Run index → EEG volume indices the training samples read.
        """
        acc: dict[str, list[np.ndarray]] = {}
        for i, vols in volumes.items():
            if len(vols):
                acc.setdefault(runs[i].subject, []).append(_read_eeg(runs[i], vols))
        for subject, parts in acc.items():
            self.stats[subject] = _moments(np.concatenate(parts))
        return self

    def ensure(self, run: RunArrays) -> None:
        """Fit a subject never seen in training from its own EEG (input only, no targets)."""
        if run.subject in self.stats:
            return
        self.stats[run.subject] = _moments(_read_eeg(run, np.flatnonzero(run.eeg_valid)))
        self.self_fitted.append(run.subject)

    def transform(self, x: np.ndarray, subject: str) -> np.ndarray:
        """Normalise ``(..., n_channels, n_freqs, n_frames)`` EEG of ``subject``."""
        mean, std = self.stats[subject]
        return ((x - mean[:, :, None]) / std[:, :, None]).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": {s: (m.copy(), d.copy()) for s, (m, d) in self.stats.items()},
                "self_fitted": list(self.self_fitted)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "EEGNormaliser":
        obj = cls()
        obj.stats = {s: (np.asarray(m, np.float32), np.asarray(d, np.float32))
                     for s, (m, d) in state["stats"].items()}
        obj.self_fitted = list(state.get("self_fitted", []))
        return obj


def _read_eeg(run: RunArrays, vols: np.ndarray) -> np.ndarray:
    data = np.asarray(run.eeg[np.asarray(vols, dtype=int)], dtype=np.float64)
    if not np.isfinite(data).all():
        raise DataError(f"{run.key}: EEG holds NaN or infinite values; mark missing EEG volumes "
                        "with eeg_valid instead")
    return data


def _moments(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Pool volumes and STFT frames: one mean and deviation per channel and frequency.
    mean = data.mean(axis=(0, 3))
    std = _floor(data.std(axis=(0, 3)))
    return mean.astype(np.float32), std.astype(np.float32)


class TargetNormaliser:
    """Per-target z-scoring of BOLD with training statistics."""

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        self.mean = mean
        self.std = std

    def fit(self, targets: Iterable[np.ndarray]) -> "TargetNormaliser":
        """Fit from blocks of training target volumes, each ``(n, n_targets)``."""
        blocks = [np.asarray(b, dtype=np.float64) for b in targets if len(b)]
        data = np.concatenate(blocks)
        if not np.isfinite(data).all():
            raise DataError("BOLD targets hold NaN or infinite values")
        self.mean = data.mean(axis=0).astype(np.float32)
        self.std = _floor(data.std(axis=0)).astype(np.float32)
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float64) * self.std + self.mean).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TargetNormaliser":
        return cls(np.asarray(state["mean"], np.float32), np.asarray(state["std"], np.float32))


class RegionNormaliser:
    """Per-subject, per-region z-scoring of BOLD region series that are a model's **input**.

    The fMRI→EEG direction reads BOLD; like the EEG input of the other direction it is standardised
    per subject, with statistics of the training volumes, and a subject with no training volumes is
    standardised with its own BOLD (input only — never its EEG targets).
    """

    def __init__(self) -> None:
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.self_fitted: list[str] = []

    def fit(self, runs: Sequence[RunArrays], volumes: dict[int, np.ndarray]) -> "RegionNormaliser":
        """Fit from the BOLD volumes ``volumes[run_index]`` that the training samples read."""
        acc: dict[str, list[np.ndarray]] = {}
        for i, vols in volumes.items():
            if len(vols):
                acc.setdefault(runs[i].subject, []).append(_read_bold(runs[i], vols))
        for subject, parts in acc.items():
            data = np.concatenate(parts)
            self.stats[subject] = (data.mean(axis=0).astype(np.float32),
                                   _floor(data.std(axis=0)).astype(np.float32))
        return self

    def ensure(self, run: RunArrays) -> None:
        """Fit a subject never seen in training from its own retained BOLD (input only)."""
        if run.subject in self.stats:
            return
        data = _read_bold(run, np.flatnonzero(run.retained))
        self.stats[run.subject] = (data.mean(axis=0).astype(np.float32),
                                   _floor(data.std(axis=0)).astype(np.float32))
        self.self_fitted.append(run.subject)

    def transform(self, x: np.ndarray, subject: str) -> np.ndarray:
        """Normalise ``(..., n_regions)`` BOLD of ``subject``."""
        mean, std = self.stats[subject]
        return ((x - mean) / std).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": {s: (m.copy(), d.copy()) for s, (m, d) in self.stats.items()},
                "self_fitted": list(self.self_fitted)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RegionNormaliser":
        obj = cls()
        obj.stats = {s: (np.asarray(m, np.float32), np.asarray(d, np.float32))
                     for s, (m, d) in state["stats"].items()}
        obj.self_fitted = list(state.get("self_fitted", []))
        return obj


def _read_bold(run: RunArrays, vols: np.ndarray) -> np.ndarray:
    data = np.asarray(run.bold[np.asarray(vols, dtype=int)], dtype=np.float64)
    if not np.isfinite(data).all():
        raise DataError(f"{run.key}: BOLD holds NaN or infinite values")
    return data
