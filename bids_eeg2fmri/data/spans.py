"""What both sample layouts share: how far the haemodynamic response reaches, and which stretches
of a run's volumes are usable throughout."""

from __future__ import annotations

import numpy as np

# How far back a BOLD sample depends on neural activity: the canonical double-gamma HRF has decayed
# below 1 % of its peak about 20 s after the event (its undershoot ends near 25 s).
HRF_REACH_S = 20.0


def window_all(flags: np.ndarray, width: int) -> np.ndarray:
    """``out[i]`` is True when ``flags[i:i + width]`` are all True (False past the end)."""
    csum = np.concatenate([[0], np.cumsum(flags.astype(np.int64))])
    n = len(flags)
    out = np.zeros(n, dtype=bool)
    if n >= width:
        out[:n - width + 1] = (csum[width:] - csum[:n - width + 1]) == width
    return out
