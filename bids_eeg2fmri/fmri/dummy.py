"""Detection of non-steady-state (dummy) volumes at the start of a BOLD run.

Before the longitudinal magnetisation reaches its steady state, the first volumes are brighter
(T1 saturation overshoot). Like fMRIPrep (``nipype.algorithms.confounds.is_outlier``), we compute the
global signal in the brain, score each volume by its robust (median/MAD) z-score and count the
leading volumes that are outliers. Unlike that function we only count *bright* outliers, because a
saturation overshoot can only raise the signal, whereas a dip at the start is motion or a spike.

The counted volumes are not removed: every derivative keeps the run's volume count and flags them
(``non_steady_state_outlierNN`` confounds, ``NonSteadyStateVolumes`` in the sidecars), as fMRIPrep
does; the steps their overshoot would bias leave them out.
"""

from __future__ import annotations

import numpy as np

# Modified z-score threshold of Iglewicz & Hoaglin, used by fMRIPrep for the same purpose.
OUTLIER_Z = 3.5
# 0.6745 = Φ⁻¹(0.75): makes the median absolute deviation a consistent estimate of σ.
MAD_TO_SD = 0.6745


def global_signal(data: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean signal per volume inside a brain mask.

    Parameters
    ----------
    data
        4-D array ``(x, y, z, t)``.
    mask
        Boolean 3-D mask; by default the voxels whose temporal mean exceeds the mean of all
        voxels' temporal means (a crude head mask that ignores the background).

    Returns
    -------
    numpy.ndarray
        ``(t,)`` float64 series.
    """
    if mask is None:
        mean = data.mean(axis=-1, dtype=np.float64)
        mask = mean > mean.mean()
    if not mask.any():
        return data.reshape(-1, data.shape[-1]).mean(axis=0, dtype=np.float64)
    return data[mask].mean(axis=0, dtype=np.float64)


def count_leading_outliers(signal: np.ndarray, threshold: float = OUTLIER_Z,
                           max_fraction: float = 0.5) -> int:
    """Number of leading samples that are bright robust outliers.

    Parameters
    ----------
    signal
        1-D series (e.g. the global signal).
    threshold
        Modified z-score above which a sample is an outlier.
    max_fraction
        At most this fraction of the series is ever flagged (the median must describe the steady
        state, which it cannot once half the run is "outlying").

    Returns
    -------
    int
    """
    x = np.asarray(signal, dtype=np.float64)
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if mad <= 0:
        # A constant steady state: any volume above it is an overshoot.
        z = np.where(x > med, np.inf, 0.0)
    else:
        z = MAD_TO_SD * (x - med) / mad
    limit = int(max_fraction * x.size)
    count = 0
    while count < limit and z[count] > threshold:
        count += 1
    return count


def detect_dummy_scans(data: np.ndarray, mask: np.ndarray | None = None,
                       threshold: float = OUTLIER_Z) -> int:
    """Count the non-steady-state volumes at the start of a 4-D series.

    Parameters
    ----------
    data
        4-D array ``(x, y, z, t)``.
    mask
        Optional boolean brain mask for the global signal.
    threshold
        Modified z-score threshold.

    Returns
    -------
    int
        The number of leading volumes to flag as non-steady-state.
    """
    if data.ndim != 4:
        raise ValueError(f"dummy-scan detection needs a 4-D array, got shape {data.shape}")
    return count_leading_outliers(global_signal(data, mask), threshold)


def match_brightness(data: np.ndarray, n_leading: int) -> np.ndarray:
    """Scale each of the ``n_leading`` first volumes of a 4-D series to the steady-state brightness.

    The factor is the ratio of the median over the bright (head) voxels of the steady-state mean
    to that of the volume; only the leading volumes are touched (in place, ``data`` is returned).
    """
    if n_leading <= 0 or n_leading >= data.shape[-1]:
        return data
    steady = data[..., n_leading:].mean(axis=-1)
    head = steady > steady.mean()
    level = float(np.median(steady[head]))
    for t in range(n_leading):
        own = float(np.median(data[..., t][head]))
        if own > 0:
            data[..., t] *= level / own
    return data
