"""fMRI→EEG samples: ``window`` BOLD volumes in, the EEG of ``horizon`` TRs out.

Where the predicted TRs sit inside the BOLD window is the one choice here. By default they are
centred, so the model sees the BOLD both before and after them. With ``--hrf-lag`` (``lag`` TRs)
the window instead ends ``lag`` TRs after the last predicted TR: the BOLD trace of a TR's neural
activity peaks 4–6 s later, so the window is placed to include it. Either way every volume a sample
reads lies inside its window, and the window inside one run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .spans import HRF_REACH_S, window_all

if TYPE_CHECKING:
    from .windows import RunArrays


@dataclass(frozen=True)
class SequenceSpec:
    """How fMRI→EEG samples are cut: ``window`` BOLD volumes in, the EEG of ``horizon`` TRs out.

    The predicted TRs start ``offset`` volumes after the window's start. A sample is named by its
    first predicted TR (the ``volume`` column of the sample table); its window is ``volume − offset
    … volume − offset + window − 1``. A sample exists only when the whole window lies in one run,
    every window volume is retained (no dummy scans) and below the motion threshold, and every
    predicted TR has EEG.

    Attributes
    ----------
    window
        BOLD volumes (TRs) per sample; the seed uses 50.
    horizon
        Consecutive TRs of EEG predicted per sample; the seed uses 5.
    fd_threshold
        Drop samples whose window holds a volume with framewise displacement above this (mm).
    lag
        ``None``: the predicted TRs are centred in the window (``offset = (window − horizon) // 2``).
        An integer: the window ends ``lag`` TRs after the last predicted TR (``offset = window −
        horizon − lag``), as BOLD lags the EEG it reflects; ``0`` ends it with the last predicted TR.
    """

    window: int = 50
    horizon: int = 5
    fd_threshold: float | None = None
    lag: int | None = None

    def __post_init__(self) -> None:
        if self.window < 1 or not 1 <= self.horizon <= self.window:
            raise DataError(f"window must be >= 1 TR and 1 <= horizon <= window; got window="
                            f"{self.window}, horizon={self.horizon}")
        if self.lag is not None and not 0 <= self.lag <= self.window - self.horizon:
            raise DataError(f"the HRF lag of {self.lag} TRs must lie in [0, window − horizon] = "
                            f"[0, {self.window - self.horizon}]: the window must hold the "
                            "predicted TRs and the lagged BOLD after them")

    @property
    def offset(self) -> int:
        """Position of the first predicted TR inside the window."""
        if self.lag is None:
            return (self.window - self.horizon) // 2
        return self.window - self.horizon - self.lag

    def span(self) -> int:
        """Volumes one sample reads (the lag lies inside the window)."""
        return self.window

    def min_buffer(self, tr: float, hrf_reach_s: float = HRF_REACH_S) -> int:
        """Smallest gap (volumes) between train and test samples that keeps their windows apart.

        Samples ``window`` or more volumes apart read disjoint BOLD and predict disjoint EEG (the
        lagged BOLD and the predicted TRs both lie inside the window); the HRF reach is added so
        that no BOLD of one sample carries the haemodynamic trace of the other's predicted EEG.
        """
        return self.span() + math.ceil(hrf_reach_s / tr)

    def describe(self, tr: float) -> dict[str, Any]:
        """The window's fields, its offset and its length in seconds, for the model card."""
        out = {**asdict(self), "offset": self.offset, "window_seconds": self.window * tr}
        out["placement"] = ("centred" if self.lag is None
                            else f"ends {self.lag} TR ({self.lag * tr:g} s) after the predicted TRs")
        return out

    def window_start(self, volumes: np.ndarray) -> np.ndarray:
        """First BOLD volume of the windows of samples named by ``volumes``."""
        return np.asarray(volumes) - self.offset

    def sample_volumes(self, run: RunArrays) -> np.ndarray:
        """First predicted TR of every valid sample of ``run``."""
        n = run.n_volumes
        good = run.retained.copy()
        if self.fd_threshold is not None and run.fd is not None:
            good &= ~(run.fd > self.fd_threshold)
        starts = np.arange(n - self.window + 1)
        if not len(starts):
            return starts
        ok = window_all(good, self.window)[starts]
        ok &= window_all(run.eeg_valid, self.horizon)[starts + self.offset]
        return starts[ok] + self.offset
