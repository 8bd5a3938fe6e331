"""Confound time series: motion parameters, framewise displacement and DVARS.

Definitions follow fMRIPrep/nipype so that our tables read like theirs:

* ``framewise_displacement`` — Power et al. (2012): the sum of the absolute backward differences
  of the three translations (mm) and of the three rotations (rad) turned into arc length on a
  50 mm sphere. The first volume has no predecessor and is ``n/a``.
* ``dvars`` — RMS over brain voxels of the temporal difference of the series, after scaling the
  series so the median voxel mean is 1000 (nipype ``ComputeDVARS``).
* ``std_dvars`` — DVARS divided by its expected value under stationarity, estimated per voxel
  from a robust (IQR) standard deviation and the lag-1 autocorrelation (Nichols 2013).

DVARS is computed here, not by ``nipype.algorithms.confounds.compute_dvars``: measured with nipype
1.11, that function imports ``nitime`` for the AR(1) fit (not one of our dependencies:
ModuleNotFoundError), and it reads NIfTI files and holds the whole series in float64, while ours
takes the masked matrix already in memory and works in voxel chunks.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pandas as pd

from .motion import PARAM_NAMES, params_to_matrices
from .tissue import expand

# fMRIPrep writes ``non_steady_state_outlier00`` (older releases ``non_steady_state_outlier_00``).
NON_STEADY_COLUMN = re.compile(r"^non_steady_state_outlier_?\d*$")
HEAD_RADIUS_MM = 50.0
# Jenkinson (2002) RMS deviation is averaged over a sphere of this radius (FSL's and fMRIPrep's).
RMSD_RADIUS_MM = 80.0
# IQR of a standard normal distribution: turns an interquartile range into a standard deviation.
IQR_TO_SD = 1.349
INTENSITY_SCALE = 1000.0

COLUMN_DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "trans_x": {"Description": "Head translation along the x (left to right) world axis, relative to "
                               "the boldref", "Units": "mm"},
    "trans_y": {"Description": "Head translation along the y (posterior to anterior) world axis, "
                               "relative to the boldref", "Units": "mm"},
    "trans_z": {"Description": "Head translation along the z (inferior to superior) world axis, "
                               "relative to the boldref", "Units": "mm"},
    "rot_x": {"Description": "Head rotation about the x world axis through the centre of the "
                             "boldref grid, relative to the boldref", "Units": "rad"},
    "rot_y": {"Description": "Head rotation about the y world axis through the centre of the "
                             "boldref grid, relative to the boldref", "Units": "rad"},
    "rot_z": {"Description": "Head rotation about the z world axis through the centre of the "
                             "boldref grid, relative to the boldref", "Units": "rad"},
    "framewise_displacement": {
        "Description": "Framewise displacement (Power et al. 2012): sum of absolute volume-to-volume "
                       "changes of the translations and of the rotations as arc length on a 50 mm "
                       "sphere; n/a for the first volume", "Units": "mm",
        "HeadRadius": HEAD_RADIUS_MM},
    "rmsd": {"Description": "Root mean square deviation (Jenkinson 2002) of the head position "
                            "from the previous volume over an 80 mm sphere; n/a for the first "
                            "volume", "Units": "mm"},
    "dvars": {"Description": "DVARS: root mean square over brain voxels of the volume-to-volume "
                             "signal change, series scaled to a median voxel mean of 1000; n/a for "
                             "the first volume", "Units": "arbitrary (1000 = median brain signal)"},
    "std_dvars": {"Description": "Standardised DVARS (Nichols 2013): DVARS divided by its expected "
                                 "value given each voxel's robust standard deviation and lag-1 "
                                 "autocorrelation; n/a for the first volume", "Units": "arbitrary"},
}


def framewise_displacement(params: np.ndarray, radius: float = HEAD_RADIUS_MM) -> np.ndarray:
    """Power framewise displacement of ``(t, 6)`` motion parameters (mm, rad); NaN first value."""
    params = np.asarray(params, dtype=float)
    diff = np.abs(np.diff(params, axis=0))
    fd = diff[:, :3].sum(axis=1) + radius * diff[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def rmsd(params: np.ndarray, radius: float = RMSD_RADIUS_MM) -> np.ndarray:
    """Volume-to-volume RMS deviation (Jenkinson 2002) of ``(t, 6)`` motion parameters; NaN first.

    For ``M_i inv(M_{i-1}) - I = [A t]`` about the rotation centre the mean squared displacement
    of the points of a sphere of radius ``R`` is ``R^2/5 tr(A^T A) + t^T t``.
    """
    mats = params_to_matrices(np.asarray(params, dtype=float), np.zeros(3))
    rel = mats[1:] @ np.linalg.inv(mats[:-1]) - np.eye(4)
    a, t = rel[:, :3, :3], rel[:, :3, 3]
    msd = radius ** 2 / 5.0 * np.einsum("nij,nij->n", a, a) + np.sum(t ** 2, axis=1)
    return np.concatenate([[np.nan], np.sqrt(msd)])


def non_steady_table(n_volumes: int, n_non_steady: int) -> pd.DataFrame:
    """fMRIPrep's ``non_steady_state_outlierNN`` columns: one indicator column per flagged volume."""
    cols = {}
    for k in range(int(n_non_steady)):
        col = np.zeros(n_volumes)
        col[k] = 1.0
        cols[f"non_steady_state_outlier{k:02d}"] = col
    return pd.DataFrame(cols, index=range(n_volumes))


def non_steady_mask(table: pd.DataFrame) -> np.ndarray:
    """``(rows,)`` bool: the volumes that a ``non_steady_state_outlier*`` column flags.

    Every consumer drops non-steady volumes through this (or nilearn's ``sample_mask``, which reads
    the same columns), never by shortening the series.
    """
    cols = [c for c in table.columns if NON_STEADY_COLUMN.match(str(c))]
    if not cols:
        return np.zeros(len(table), dtype=bool)
    return table[cols].fillna(0).to_numpy(float).sum(axis=1) > 0


def non_steady_fields(count: int, source: str) -> dict[str, Any]:
    """Sidecar fields of a series that keeps its ``count`` leading non-steady-state volumes.

    ``NonSteadyStateVolumes`` counts them (they are flagged by the confounds'
    ``non_steady_state_outlierNN`` columns, which consumers read); ``DummyScans`` says how the
    count was found. No volume is removed, so ``NumberOfVolumesDiscardedByUser`` is not written.
    """
    return {"NonSteadyStateVolumes": int(count),
            "DummyScans": {"Count": int(count), "Source": source}}


def dvars(data: np.ndarray, mask: np.ndarray | None = None, chunk: int = 20000
          ) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and standardised DVARS of a 4-D series.

    Parameters
    ----------
    data
        4-D ``(x, y, z, t)`` array, or 2-D ``(voxels, t)``.
    mask
        Boolean brain mask for a 4-D array; all voxels when ``None``.
    chunk
        Voxels processed at a time: the float64 temporaries stay small (a 300-volume run at 2 mm
        would otherwise need several GB of copies of the whole matrix).

    Returns
    -------
    dvars, std_dvars
        ``(t,)`` arrays whose first value is NaN.
    """
    if data.ndim == 4:
        series = data[mask] if mask is not None else data.reshape(-1, data.shape[-1])
    else:
        series = data
    n_vox, n_t = series.shape
    nan = np.full(1, np.nan)
    if n_vox == 0 or n_t < 2:
        return np.full(n_t, np.nan), np.full(n_t, np.nan)
    median_mean = float(np.median(series.mean(axis=1, dtype=np.float64)))
    scale = INTENSITY_SCALE / median_mean if median_mean > 0 else 1.0
    sum_sq_diff = np.zeros(n_t - 1)
    expected_sum, n_kept = 0.0, 0
    for start in range(0, n_vox, chunk):
        block = np.asarray(series[start:start + chunk], dtype=np.float64) * scale
        sum_sq_diff += np.sum(np.diff(block, axis=1) ** 2, axis=0)
        q75, q25 = np.percentile(block, [75, 25], axis=1, method="lower")
        robust_sd = (q75 - q25) / IQR_TO_SD
        keep = robust_sd > 0
        if not keep.any():
            continue
        centred = block[keep] - block[keep].mean(axis=1, keepdims=True)
        # Yule-Walker lag-1 autocorrelation per voxel: r(1) / r(0) of the demeaned series.
        denom = np.maximum(np.sum(centred ** 2, axis=1), np.finfo(float).tiny)
        ar1 = np.sum(centred[:, :-1] * centred[:, 1:], axis=1) / denom
        expected_sum += float(np.sum(np.sqrt(np.clip(2.0 * (1.0 - ar1), 0.0, None))
                                     * robust_sd[keep]))
        n_kept += int(keep.sum())
    dv = np.sqrt(sum_sq_diff / n_vox)
    expected = expected_sum / n_kept if n_kept else 0.0
    std = dv / expected if expected > 0 else np.full_like(dv, np.nan)
    return np.concatenate([nan, dv]), np.concatenate([nan, std])


def motion_table(params: np.ndarray) -> pd.DataFrame:
    """Motion parameters (with fMRIPrep's expansions), FD and RMSD, one row per volume."""
    params = np.asarray(params, dtype=float)
    table = expand(pd.DataFrame(params, columns=list(PARAM_NAMES)), list(PARAM_NAMES))
    table["framewise_displacement"] = framewise_displacement(params)
    table["rmsd"] = rmsd(params)
    return table


def confounds_table(params: np.ndarray, data: np.ndarray, mask: np.ndarray | None = None
                    ) -> pd.DataFrame:
    """The ``desc-confounds_timeseries`` table: one row per volume."""
    table = motion_table(params)
    dv, std = dvars(data, mask)
    table["dvars"] = dv
    table["std_dvars"] = std
    return table


def write_confounds_tsv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a confounds table as BIDS TSV (tab separated, ``n/a`` for missing values)."""
    table.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.8g")


def confounds_sidecar(columns: list[str], extra: dict[str, dict[str, Any]] | None = None
                      ) -> dict[str, Any]:
    """JSON sidecar describing each column of a confounds table.

    ``extra`` holds descriptions of other columns (the tissue confounds, CompCor metadata). The
    expansions of a described column are described from it.
    """
    known = {**COLUMN_DESCRIPTIONS, **(extra or {})}
    out: dict[str, Any] = {}
    for name in columns:
        if name in known:
            out[name] = known[name]
            continue
        base, _, suffix = name.partition("_derivative1")
        kind = "derivative1" + suffix if _ else None
        if kind is None and name.endswith("_power2"):
            base, kind = name[: -len("_power2")], "power2"
        if kind and base in known:
            out[name] = {**known[base], "Description": f"{kind} expansion of {base}"}
        elif name.startswith("non_steady_state_outlier"):
            out[name] = {"Description": "Indicator of a non-steady-state volume at the run start"}
    return out
