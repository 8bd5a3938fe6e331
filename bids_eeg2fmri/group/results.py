"""From a cross-validation of one direction to the group level's tables, curves and summaries.

One row per model and fold: the direction's headline MSE and r, the two baselines' MSE, and on
simulated data ``r_driven`` (the mean r over the regions or band × channel-group cells the
simulator's sources drive) with their noise ceiling; then the direction's other scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation.comparison import BASELINES, baseline_columns
from ..training.core import CVResult, Evaluation
from ..training.direction import Direction
from .collect import GroupData
from .truth import Truth

#: EEG→fMRI scores copied from ``model_<key>`` before the driven columns.
EEG2FMRI_SUMMARY = ("rmse", "r_spatial", "r_roi", "ssim_brain", "ssim_volume3d", "ssim_slices2d",
                    "psnr", "psnr_brain", "psnr_volume", "fc_similarity")


@dataclass
class DirectionResult:
    """What one direction produced, for the report and the summary."""

    table: pd.DataFrame
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    fc: dict[str, Any] | None = None
    model_dirs: dict[str, Path] = field(default_factory=dict)


def score_options(d: Direction, data: GroupData, truth: Truth) -> dict[str, Any]:
    """Options of the direction's scores: fMRI→EEG cells over all channels and the simulated
    sources' channel groups."""
    if d.name == "fmri2eeg":
        return {"groups": {"all": list(data.spec.channels), **(truth.groups or {})}}
    return {}


def _eeg2fmri_driven(ev: Evaluation, data: GroupData, truth: Truth) -> dict[str, float]:
    names = data.region_names or []
    subjects = set(ev.samples["subject"])
    keys = [f.key for f in data.files if f.subject in subjects]
    driven = sorted({n for k in keys for n in truth.ceilings.get(k, {})} & set(names))
    if not driven:
        return {}
    m = ev.metrics
    return {"r_driven": float(np.nanmean([m.get(f"model_r_region_{names.index(n) + 1}", np.nan)
                                          for n in driven])),
            "noise_ceiling": float(np.nanmean([truth.ceilings[k][n] for k in keys for n in driven
                                               if n in truth.ceilings.get(k, {})]))}


def _fmri2eeg_driven(ev: Evaluation, data: GroupData, truth: Truth) -> dict[str, float]:
    # Simulated sources are named <region>_<band>: their driven cell is <band>_<group>.
    cells = [f"r_{g.rsplit('_', 1)[-1]}_{g}" for g in (truth.groups or {})]
    cells = [c for c in cells if c in ev.metrics]
    if not cells:
        return {}
    out = {"r_driven": float(np.nanmean([ev.metrics[c] for c in cells]))}
    ceil = [ev.metrics.get(f"ceiling_{c[2:]}", np.nan) for c in cells]
    if np.isfinite(ceil).any():
        out["noise_ceiling"] = float(np.nanmean(ceil))
    return out


def _columns(d: Direction, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """The direction's other scores, before and after the driven columns."""
    if d.name == "eeg2fmri":
        return ({k: metrics[f"model_{k}"] for k in EEG2FMRI_SUMMARY if f"model_{k}" in metrics},
                {k: v for k, v in metrics.items() if k.startswith("model_r_region_")})
    # The headline r is kept under its own name too (fMRI→EEG: r_overall beside r_pooled_db).
    shown = set(d.headline.values()) - {d.headline["r"]}
    # The baselines' scores appear once, as baseline_<name>_<metric> (evaluation.comparison).
    return {}, {k: v for k, v in metrics.items() if k not in shown
                and not k.startswith(tuple(f"{b}_" for b in BASELINES))}


_DRIVEN = {"eeg2fmri": _eeg2fmri_driven, "fmri2eeg": _fmri2eeg_driven}


def fold_table(d: Direction, cv: CVResult, data: GroupData, truth: Truth) -> pd.DataFrame:
    """One row per model and fold (module docstring)."""
    h = d.headline
    rows = []
    for rec in cv.table.to_dict("records"):
        ev = cv.evaluations[(rec["model"], rec["fold"])]
        before, after = _columns(d, ev.metrics)
        rows.append({"direction": d.name, "model": rec["model"], "fold": rec["fold"],
                     "test_subject": ",".join(dict.fromkeys(ev.samples["subject"])),
                     "n_train": rec["n_train"], "n_test": rec["n_test"],
                     "mse": ev.metrics[h["mse"]], "r": ev.metrics[h["r"]],
                     "baseline_mean_mse": ev.metrics[h["train_mean_mse"]],
                     "baseline_subject_mse": ev.metrics[h["subject_mean_mse"]],
                     **before, **_DRIVEN[d.name](ev, data, truth),
                     **baseline_columns(d.name, ev.metrics),
                     **{k: ev.metrics[k] for k in ("data_range", "subject_mean_oracle")
                        if k in ev.metrics}, **after})
    return pd.DataFrame(rows)


def loss_curves(work: Path, d: Direction, models: list[str], folds: list[str]
                ) -> dict[str, pd.DataFrame]:
    """Per model, the folds' ``losses.tsv`` (torch models only)."""
    out = {}
    for name in models:
        frames = [pd.read_csv(work / name / fold / "losses.tsv", sep="\t",
                              na_values=["n/a"]).assign(fold=fold)
                  for fold in folds if (work / name / fold / "losses.tsv").is_file()]
        if frames:
            out[f"{name} ({d.name})"] = pd.concat(frames, ignore_index=True)
    return out


def fc_matrices(cv: CVResult, data: GroupData, models: list[str]) -> dict[str, Any]:
    """Measured and predicted region × region correlation over all test folds (region targets)."""
    folds = [f.name for f in cv.folds]
    true = np.concatenate([cv.evaluations[(models[0], f)].true for f in folds])
    return {"measured": np.nan_to_num(np.corrcoef(true.T)), "labels": data.region_names or [],
            "predicted": {m: np.nan_to_num(np.corrcoef(np.concatenate(
                [cv.evaluations[(m, f)].pred for f in folds]).T)) for m in models}}


def cv_summary(table: pd.DataFrame, regime: str) -> dict[str, Any]:
    """Mean and SEM over folds of every numeric column, for the model card."""
    numeric = [c for c in table.columns if c not in ("direction", "model", "fold", "test_subject")
               and not c.startswith("model_r_region_") and pd.api.types.is_numeric_dtype(table[c])]
    summary = {}
    for c in numeric:
        v = table[c].to_numpy(float)
        v = v[np.isfinite(v)]
        summary[c] = {"Mean": float(v.mean()) if v.size else None,
                      "SEM": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None}
    return {"Regime": regime, "Folds": table["fold"].astype(str).tolist(),
            "TestSubjects": table["test_subject"].tolist(), "Metrics": summary,
            "BeatsBaselines": bool(summary["mse"]["Mean"] is not None and all(
                summary["mse"]["Mean"] < summary[b]["Mean"]
                for b in ("baseline_mean_mse", "baseline_subject_mse")
                if summary.get(b, {}).get("Mean") is not None))}


def print_summary(table: pd.DataFrame) -> str:
    """One line per direction and model: r (all targets, and the simulator's driven ones when
    known), the noise ceiling, MSE and the baselines' MSE (means over folds)."""
    lines = [f"{'direction':<9} {'model':<14} {'r':>7} {'r_driven':>8} {'ceiling':>7} {'MSE':>8} "
             f"{'train-mean':>10} {'subj-mean':>9}"]
    for (direction, model), g in table.groupby(["direction", "model"], sort=False):
        ceil = g["noise_ceiling"].mean() if "noise_ceiling" in g else float("nan")
        # On simulated data r over the driven regions/cells is what the ceiling applies to.
        driven = g["r_driven"].mean() if "r_driven" in g else float("nan")
        lines.append(f"{direction:<9} {model:<14} {g['r'].mean():>7.3f} {driven:>8.3f} {ceil:>7.3f} "
                     f"{g['mse'].mean():>8.4f} {g['baseline_mean_mse'].mean():>10.4f} "
                     f"{g['baseline_subject_mse'].mean():>9.4f}")
    return "\n".join(lines)
