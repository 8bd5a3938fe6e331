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
from .normalise import EEGNormaliser, TargetNormaliser
from .windows import RunArrays, WindowSpec


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

    def flat_inputs(self) -> np.ndarray:
        """Every sample's normalised EEG window flattened, ``(n_samples, n_features)`` (ridge)."""
        return np.stack([self[i]["x"].numpy().ravel() for i in range(len(self))])


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
