"""torch Datasets of paired windows that read each sample's slices on demand.

Nothing is concatenated up front: a sample slices ``window`` EEG volumes and one BOLD volume out of
its run's arrays, which may be ``np.memmap``\\ s or h5py datasets (see :mod:`.readers`), so a
20-subject dataset is paged in from disk as needed rather than held in RAM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .normalise import EEGNormaliser, RegionNormaliser, TargetNormaliser
from .windows import RunArrays, SequenceSpec, WindowSpec


class WindowDataset(Dataset):
    """Samples ``{"x", "y", "y_hist", "index"}`` for the rows of a sample table.

    Parameters
    ----------
    runs
        All runs (the table's ``run_index`` points into it).
    samples
        Rows of :func:`~bids_eeg2fmri.data.windows.index_samples` to serve.
    spec
        The window specification the table was built with.
    eeg_norm, target_norm
        Fitted normalisers (training statistics).

    Notes
    -----
    ``x`` is ``(window, n_channels, n_freqs, n_frames)`` float32; ``y`` is the normalised target
    ``(n_targets,)``; ``y_hist`` holds the ``spec.history`` previous normalised targets (oldest
    first), ``(history, n_targets)``, empty when ``history`` is 0; ``index`` is the row position.
    """

    def __init__(self, runs: Sequence[RunArrays], samples: pd.DataFrame, spec: WindowSpec,
                 eeg_norm: EEGNormaliser, target_norm: TargetNormaliser) -> None:
        self.runs = runs
        self.run_index = samples["run_index"].to_numpy()
        self.volume = samples["volume"].to_numpy()
        self.spec = spec
        self.eeg_norm = eeg_norm
        self.target_norm = target_norm
        for i in np.unique(self.run_index):
            eeg_norm.ensure(runs[i])

    def __len__(self) -> int:
        return len(self.volume)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        run = self.runs[self.run_index[i]]
        t = int(self.volume[i])
        start = t - self.spec.span() + 1
        x = np.asarray(run.eeg[start:start + self.spec.window], dtype=np.float32)
        first = t - self.spec.history
        y = np.asarray(run.bold[first:t + 1], dtype=np.float32)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError(f"{run.key}: NaN or infinite values in the EEG window or BOLD target "
                            f"of volume {t}")
        x = self.eeg_norm.transform(x, run.subject)
        y = self.target_norm.transform(y)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y[-1]),
                "y_hist": torch.from_numpy(np.ascontiguousarray(y[:-1])),
                "index": torch.tensor(i)}

    def targets(self) -> np.ndarray:
        """Raw (un-normalised) targets of every sample, ``(n_samples, n_targets)``."""
        return _gather(self.runs, self.run_index, self.volume, "bold")

    def truth(self) -> np.ndarray | None:
        """Noiseless targets of every sample when all runs carry them, else None."""
        if any(self.runs[i].truth is None for i in np.unique(self.run_index)):
            return None
        return _gather(self.runs, self.run_index, self.volume, "truth")


def _gather(runs: Sequence[RunArrays], run_index: np.ndarray, volume: np.ndarray,
            attr: str) -> np.ndarray:
    out = []
    for i in np.unique(run_index):
        sel = run_index == i
        out.append((sel, np.asarray(getattr(runs[i], attr)[np.sort(volume[sel])],
                                    dtype=np.float32)))
    n_t = out[0][1].shape[1]
    result = np.empty((len(volume), n_t), dtype=np.float32)
    for sel, block in out:
        # Rows come back sorted by volume within a run; put them back in table order.
        order = np.argsort(np.argsort(volume[sel]))
        result[np.flatnonzero(sel)] = block[order]
    return result


class SequenceDataset(Dataset):
    """fMRI→EEG samples ``{"x", "y", "index"}``: a BOLD window in, ``horizon`` TRs of EEG out.

    Parameters
    ----------
    runs
        All runs; ``bold`` holds the input region series, ``eeg`` the spectrogram targets.
    samples
        Rows of :func:`~bids_eeg2fmri.data.windows.index_samples` cut with ``spec``.
    spec
        A :class:`~bids_eeg2fmri.data.windows.SequenceSpec`.
    bold_norm
        Fitted :class:`~bids_eeg2fmri.data.normalise.RegionNormaliser` (input).
    eeg_norm
        :class:`~bids_eeg2fmri.data.normalise.EEGNormaliser` (targets), holding every served
        subject.

    Notes
    -----
    ``x`` is ``(window, n_regions)`` float32; ``y`` is the normalised spectrogram of the
    ``horizon`` predicted TRs, STFT frames averaged per TR (the models predict per-TR power),
    flattened to ``(horizon · n_channels · n_freqs,)`` so that the shared trainer's losses apply.
    """

    def __init__(self, runs: Sequence[RunArrays], samples: pd.DataFrame, spec: SequenceSpec,
                 bold_norm: RegionNormaliser, eeg_norm: EEGNormaliser) -> None:
        self.runs = runs
        self.run_index = samples["run_index"].to_numpy()
        self.volume = samples["volume"].to_numpy()
        self.spec = spec
        self.bold_norm = bold_norm
        self.eeg_norm = eeg_norm
        for i in np.unique(self.run_index):
            bold_norm.ensure(runs[i])
            if runs[i].subject not in eeg_norm.stats:
                raise DataError(f"{runs[i].key}: no EEG statistics for subject {runs[i].subject}; "
                                "fit the target normaliser on its calibration volumes first")

    def __len__(self) -> int:
        return len(self.volume)

    def _window(self, i: int) -> np.ndarray:
        run = self.runs[self.run_index[i]]
        start = int(self.volume[i]) - self.spec.offset
        x = np.asarray(run.bold[start:start + self.spec.window], dtype=np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{run.key}: NaN or infinite BOLD in the window of volume {self.volume[i]}")
        return self.bold_norm.transform(x, run.subject)

    def _target(self, i: int, attr: str = "eeg") -> np.ndarray:
        run = self.runs[self.run_index[i]]
        t = int(self.volume[i])
        y = np.asarray(getattr(run, attr)[t:t + self.spec.horizon], dtype=np.float32)
        if not np.isfinite(y).all():
            raise DataError(f"{run.key}: NaN or infinite EEG among volumes {t}-{t + self.spec.horizon - 1}")
        return self.eeg_norm.transform(y, run.subject).mean(axis=-1)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": torch.from_numpy(self._window(i)),
                "y": torch.from_numpy(np.ascontiguousarray(self._target(i).ravel())),
                "index": torch.tensor(i)}

    def targets(self) -> np.ndarray:
        """Normalised measured targets ``(n_samples, horizon, n_channels, n_freqs)``."""
        return np.stack([self._target(i) for i in range(len(self))])

    def truth(self) -> np.ndarray | None:
        """Noiseless targets in the same units when every run carries ``eeg_truth``, else None."""
        if any(self.runs[i].eeg_truth is None for i in np.unique(self.run_index)):
            return None
        return np.stack([self._target(i, "eeg_truth") for i in range(len(self))])
