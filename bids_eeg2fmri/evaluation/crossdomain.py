"""Every EEG→fMRI run scores both metric domains, whichever one its models trained in.

A model trains and is scored in ``--target-domain`` as before (the unprefixed columns of the
metrics TSV, with ``domain`` naming it). In addition each held-out run's prediction is mapped to
the other domain and scored there against that domain's targets, beside the same baselines
computed natively in that domain (columns prefixed ``<domain>_``):

- **fluctuations → intensity** (:func:`fluctuations_to_intensity`): the predicted z-scores times
  the held-out subject's per-voxel temporal SD, plus its mean volume, then min-max per volume.
  The SD and mean come from the source the subject-mean baseline uses (the subject's other runs
  and the non-test samples of a blocked run); a subject with a single, fully tested run falls
  back to its tested volumes, counted in ``<domain>_subject_mean_oracle``.
- **intensity → fluctuations** (:func:`intensity_to_fluctuations`): each voxel of the predicted
  series detrended (Legendre degree 2) and z-scored over the held-out run's predicted volumes,
  as the fluctuation targets are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..data.windows import DataSpec, RunArrays
from ..fmri.model_ready import model_ready
from ..training.scores import eeg2fmri_scores
from .baselines import domain_baselines, subject_references
from .comparison import baseline_columns
from .domains import check_domain, minmax_volumes

#: The domain a model did not train in.
OTHER = {"fluctuations": "intensity", "intensity": "fluctuations"}
#: Model scores copied (``model_<key>`` → ``<domain>_<key>``) into the fold table.
SCORES = ("mse", "rmse", "r_temporal", "r_spatial", "r_roi", "ssim_brain", "ssim_volume3d",
          "ssim_slices2d", "psnr", "psnr_brain", "psnr_volume", "fc_similarity")


def other_domain(domain: str) -> str:
    """The domain a model trained in ``domain`` is additionally scored in."""
    return OTHER[check_domain(domain)]


def fluctuations_to_intensity(pred: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Predicted fluctuations as min-max normalised intensity volumes.

    Parameters
    ----------
    pred
        ``(n_volumes, n_targets)`` predictions in fluctuation units (per-voxel z-scores).
    mean, std
        The subject's mean volume and per-voxel temporal SD in the intensity domain, broadcast
        to ``pred`` (one row per volume, or one for all).

    Returns
    -------
    ndarray
        ``(n_volumes, n_targets)`` float32, every volume spanning [0, 1].
    """
    pred = np.asarray(pred, dtype=np.float64)
    return minmax_volumes(pred * np.asarray(std, np.float64) + np.asarray(mean, np.float64))


def intensity_to_fluctuations(pred: np.ndarray, run_index: np.ndarray, volume: np.ndarray,
                              degree: int = 2) -> np.ndarray:
    """Predicted intensities as fluctuations: per run, each target detrended and z-scored over
    the run's predicted volumes (placed at their volume index, so gaps keep the trend's timing).

    Parameters
    ----------
    pred
        ``(n_volumes, n_targets)`` predictions in the intensity domain.
    run_index, volume
        Each prediction's run and volume index.
    degree
        Legendre degree of the trend (the fluctuation targets' 2; lowered for runs with too few
        predicted volumes to fit it).
    """
    pred = np.asarray(pred, dtype=np.float64)
    run_index, volume = np.asarray(run_index), np.asarray(volume, dtype=int)
    out = np.empty(pred.shape, dtype=np.float32)
    for r in np.unique(run_index):
        at = np.flatnonzero(run_index == r)
        vols = volume[at]
        full = np.zeros((pred.shape[1], int(vols.max()) + 1))
        full[:, vols] = pred[at].T
        fitted = np.zeros(full.shape[1], dtype=bool)
        fitted[vols] = True
        deg = min(degree, len(np.unique(vols)) - 2)
        z = model_ready(full, max(deg, 0), sample_mask=fitted) if len(at) > 1 else full * 0
        out[at] = z[:, vols].T
    return out


@dataclass
class OtherDomain:
    """EEG→fMRI targets in the domain the models did not train in, aligned with the runs.

    Attributes
    ----------
    domain
        ``fluctuations`` or ``intensity``.
    bold
        Per run (in the order of the trained domain's runs), ``(volumes, n_targets)`` memory maps
        on the same targets (voxels of the common mask, or regions).
    """

    domain: str
    bold: list[np.ndarray]

    def targets(self, part: pd.DataFrame) -> np.ndarray:
        """The targets of the sample rows ``part`` (their ``run_index`` and ``volume``)."""
        run_index = part["run_index"].to_numpy()
        volume = part["volume"].to_numpy()
        out = np.empty((len(part), self.bold[0].shape[1]), dtype=np.float64)
        for r in np.unique(run_index):
            at = run_index == r
            out[at] = self.bold[int(r)][volume[at]]
        return out


def subject_levels(other: OtherDomain, runs: Sequence[RunArrays], table: pd.DataFrame,
                   test_rows: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test sample, the subject's mean and per-target SD in ``other``'s domain, from the
    subject-mean baseline's leak-free source (the tested volumes when there is none)."""
    mean, std = np.empty_like(true), np.empty_like(true)
    for at, ref in subject_references(runs, table, test_rows):
        y = other.targets(ref) if len(ref) else true[at]
        mean[at], std[at] = y.mean(axis=0), y.std(axis=0)
    return mean, std


def score_other_domain(pred: np.ndarray, other: OtherDomain, runs: Sequence[RunArrays],
                       spec: DataSpec, table: pd.DataFrame, test_rows: np.ndarray,
                       train_rows: np.ndarray, roi_labels: np.ndarray | None = None
                       ) -> dict[str, float]:
    """A held-out prediction mapped to ``other.domain`` and scored there beside that domain's
    baselines (module docstring); the keys of :func:`~bids_eeg2fmri.training.scores.eeg2fmri_scores`
    plus ``subject_mean_oracle``."""
    table = table.reset_index(drop=True)
    test = table.iloc[np.asarray(test_rows, dtype=int)]
    true = other.targets(test)
    if other.domain == "intensity":
        mean, std = subject_levels(other, runs, table, test_rows, true)
        mapped = fluctuations_to_intensity(pred, mean, std)
    else:
        mapped = intensity_to_fluctuations(pred, test["run_index"].to_numpy(),
                                           test["volume"].to_numpy())
    train_mean = other.targets(table.iloc[np.asarray(train_rows, dtype=int)]).mean(axis=0)
    base, info = domain_baselines(other.targets, runs, table, test_rows, true, train_mean,
                                  train_rows)
    metrics = eeg2fmri_scores(mapped, true, None, base, spec, domain=other.domain,
                              roi_labels=roi_labels)
    return {**metrics, **info}


def other_domain_columns(metrics: dict[str, float], domain: str) -> dict[str, float]:
    """The fold table's ``<domain>_`` columns of :func:`score_other_domain`'s metrics: the model's
    scores, the baselines' (``baseline_<name>_<metric>``), ``<metric>_minus_best_baseline``,
    ``data_range`` and ``subject_mean_oracle``."""
    cols = {k: metrics[f"model_{k}"] for k in SCORES if f"model_{k}" in metrics}
    cols.update(baseline_columns("eeg2fmri", metrics))
    cols.update({k: metrics[k] for k in ("data_range", "subject_mean_oracle") if k in metrics})
    return {f"{domain}_{k}": v for k, v in cols.items()}


def add_other_domain(table: pd.DataFrame, cv: Any, data: Any,
                     roi_labels: np.ndarray | None = None, **_: Any) -> pd.DataFrame:
    """The fold table of an EEG→fMRI cross-validation with its ``domain`` column and the other
    domain's columns (when ``data.other`` holds that domain's targets); other tables unchanged.

    Parameters
    ----------
    table
        One row per model and fold (:func:`~bids_eeg2fmri.group.results.fold_table`).
    cv
        The :class:`~bids_eeg2fmri.training.core.CVResult` the table came from.
    data
        The direction's :class:`~bids_eeg2fmri.group.collect.GroupData`.
    roi_labels
        Per-voxel atlas labels of voxel targets (ROI r and FC similarity).
    """
    if data.direction != "eeg2fmri":
        return table
    table = table.assign(domain=data.domain)
    other = getattr(data, "other", None)
    if other is None or table.empty:
        return table
    folds = {f.name: f for f in cv.folds}
    rows = []
    for rec in table[["model", "fold"]].to_dict("records"):
        fold = folds[rec["fold"]]
        ev = cv.evaluations[(rec["model"], rec["fold"])]
        m = score_other_domain(ev.pred, other, data.runs, data.spec, cv.samples, fold.test,
                               fold.train, roi_labels)
        rows.append(other_domain_columns(m, other.domain))
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
