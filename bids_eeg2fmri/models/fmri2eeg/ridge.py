"""``ridge`` (fMRI→EEG): the closed-form ridge of the other direction, reused on BOLD windows.

The design matrix is the flattened window of region signals — every TR of the window × region, i.e.
the region signals at lags ``−offset … window − offset − 1`` around the predicted TRs — and every
spectrogram bin of every predicted TR is a target. Alpha is chosen by the same inner CV (whole
subjects when there are at least three), per target by default. Nothing is re-implemented: the class is
:class:`~bids_eeg2fmri.models.eeg2fmri.ridge.Ridge` registered for this direction, with
``ModelShape(window, n_channels=n_regions, n_freqs=1, n_frames=1, n_targets=horizon · bins)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import ModelShape
from ..eeg2fmri.ridge import DEFAULT_ALPHAS, Ridge
from ..registry import register


@register("ridge", defaults={"alphas": list(DEFAULT_ALPHAS), "alpha_per_target": True}, lr=0.0,
          direction="fmri2eeg",
          paper="ridge regression from lagged region signals (the standard linear baseline)",
          closed_form=True)
class LaggedRegionRidge(Ridge):
    """``(B, window, n_regions)`` → ``(B, horizon · n_channels · n_freqs)`` by ridge regression."""

    def __init__(self, shape: ModelShape, alphas: Sequence[float] = DEFAULT_ALPHAS,
                 alpha_per_target: bool = True) -> None:
        super().__init__(shape, alphas=alphas, pool_frames=False,
                         alpha_per_target=alpha_per_target)
