"""Model against its baselines, and the papers' reported numbers against the mean volume here.

:func:`baseline_columns` turns one evaluation's metrics into the group table's baseline columns
and ``<metric>_minus_best_baseline`` (model minus the best baseline; positive is better for
scores, negative for errors). :data:`PAPERS` holds the seed papers' reported numbers with the
metric and domain they were computed in, and :func:`papers_table` sets each beside what the
training-mean volume scores on the same metric here — in the paper's domain, which every
EEG→fMRI run scores (the domain its models trained in, or predictions mapped to the other,
:mod:`.crossdomain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .domains import DOMAINS

BASELINES = ("train_mean", "subject_mean", "subject_mean_fluct")

#: Metric name per direction → whether higher is better.
COMPARED = {
    "eeg2fmri": {"r_temporal": True, "r_spatial": True, "r_roi": True, "fc_similarity": True,
                 "ssim_brain": True, "ssim_volume3d": True, "ssim_slices2d": True,
                 "psnr_brain": True, "psnr_volume": True, "psnr": True, "rmse": False,
                 "mse": False},
    "fmri2eeg": {"r_pooled_db": True, "r_overall": True, "r_bins": True, "mse": False},
}
#: Where the model's own value of a compared metric is (fMRI→EEG scores carry no prefix).
MODEL_PREFIX = {"eeg2fmri": "model_", "fmri2eeg": ""}


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def baseline_columns(direction: str, metrics: dict[str, float]) -> dict[str, float]:
    """``baseline_<name>_<metric>`` for every baseline and compared metric, and
    ``<metric>_minus_best_baseline``.

    A baseline without a finite value (a constant prediction has no r) counts as r = 0 for the
    comparison: it predicts nothing.
    """
    out: dict[str, float] = {}
    for metric, higher in COMPARED[direction].items():
        model = metrics.get(MODEL_PREFIX[direction] + metric)
        if not _finite(model):
            continue
        values = []
        for b in BASELINES:
            v = metrics.get(f"{b}_{metric}")
            if v is None:
                continue
            out[f"baseline_{b}_{metric}"] = float(v)
            if _finite(v):
                values.append(float(v))
            elif metric.startswith("r_") or metric == "fc_similarity":
                values.append(0.0)
        if values:
            best = max(values) if higher else min(values)
            out[f"{metric}_minus_best_baseline"] = float(model) - best
    return out


@dataclass(frozen=True)
class Reported:
    """One number a paper reports, with the metric and domain it was computed in."""

    paper: str
    dataset: str
    direction: str
    metric: str
    domain: str
    value: float
    note: str = ""


#: The seed papers' headline numbers (as quoted in the issue "Evaluate like the field").
PAPERS = (
    # Metric per DCalhas/eeg_to_fmri src/utils/metrics.py: 2-D SSIM of every 3rd axial slice
    # (tf.image.ssim); the value itself is unverified (docs/evaluation.md, Sources).
    Reported("Calhas 2023", "NODDI", "eeg2fmri", "ssim_slices2d", "intensity", 0.46,
             "intensity volumes z-scored per subject, native grid; every 3rd slice"),
    Reported("Bruno 2025", "NODDI", "eeg2fmri", "ssim_volume3d", "intensity", 0.56,
             "64×64×30 resize, min-max normalised"),
    Reported("Bruno 2025", "NODDI", "eeg2fmri", "psnr_volume", "intensity", 25.92,
             "64×64×30 resize, min-max normalised"),
    Reported("Spec2VolCAMU-Net 2025", "NODDI", "eeg2fmri", "ssim_slices2d", "intensity", 0.693),
    Reported("Spec2VolCAMU-Net 2025", "Oddball", "eeg2fmri", "ssim_slices2d", "intensity", 0.725),
    Reported("Spec2VolCAMU-Net 2025", "CN-EPFL", "eeg2fmri", "ssim_slices2d", "intensity", 0.788),
    Reported("Bricman poster", "own data", "fmri2eeg", "r_pooled_db", "dB spectrogram", 0.8741,
             "r pooled over every TR × channel × frequency"),
)


def domain_column(name: str, domain: str, trained: str) -> str:
    """The fold table's column of ``name`` scored in ``domain`` when the models trained in
    ``trained``: unprefixed in the trained domain, ``<domain>_<name>`` in the other."""
    return name if domain == trained else f"{domain}_{name}"


def papers_table(table: pd.DataFrame, domain: str) -> pd.DataFrame:
    """Each reported number beside the mean volume's (and the best model's) score here, in the
    paper's own domain whichever domain the models trained in.

    Parameters
    ----------
    table
        The group table (one row per direction, model and fold) with the baseline columns, and
        the other domain's ``<domain>_`` columns (:mod:`.crossdomain`).
    domain
        The EEG→fMRI domain the models of this run trained in.

    Returns
    -------
    pandas.DataFrame
        ``paper``, ``dataset``, ``metric``, ``domain``, ``reported``, ``mean_volume_here``
        (the training-mean baseline, mean over folds; NaN where this run has no score in the
        paper's domain), ``best_model_here`` (mapped from the trained domain where that differs)
        and ``note``.
    """
    rows = []
    for p in PAPERS:
        here = table[table["direction"] == p.direction] if "direction" in table else table.iloc[:0]
        own = p.direction == "fmri2eeg" or p.domain == domain
        # The group table names the model's scores without a prefix.
        base_col, model_col = (f"baseline_train_mean_{p.metric}", p.metric) if own else (
            domain_column(f"baseline_train_mean_{p.metric}", p.domain, domain),
            domain_column(p.metric, p.domain, domain))
        scored = base_col in here and here[base_col].notna().any()
        mean_here = float(np.nanmean(here[base_col])) if scored else float("nan")
        best = (float(here.groupby("model")[model_col].mean().max())
                if model_col in here and here[model_col].notna().any() else float("nan"))
        note = p.note
        if not own:
            note = "; ".join(filter(None, [note, (
                f"models trained on {domain}: their predictions mapped to {p.domain}" if scored
                else f"this run has no {p.domain} scores: rerun with --target-domain "
                     f"{p.domain}")]))
        rows.append({"paper": p.paper, "dataset": p.dataset, "metric": p.metric,
                     "domain": p.domain, "reported": p.value, "mean_volume_here": mean_here,
                     "best_model_here": best, "note": note})
    return pd.DataFrame(rows)


def gains_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per direction, model and scored domain, the mean over folds of every
    ``<metric>_minus_best_baseline`` (``scored``: ``trained`` in the models' own domain,
    ``mapped`` for EEG→fMRI predictions mapped to the other domain)."""
    suffix = "_minus_best_baseline"
    cols = [c for c in table.columns if c.endswith(suffix)]
    if not cols:
        return pd.DataFrame()
    prefixed = {d: [c for c in cols if c.startswith(f"{d}_")] for d in DOMAINS}
    own = [c for c in cols if not any(c in v for v in prefixed.values())]
    rows = []
    for (direction, model), g in table.groupby(["direction", "model"], sort=False):
        trained = (g["domain"].dropna().iloc[0] if "domain" in g and g["domain"].notna().any()
                   else "dB spectrogram" if direction == "fmri2eeg" else "fluctuations")
        for dom, scored, mine in [(trained, "trained", own)] + [
                (d, "mapped", c) for d, c in prefixed.items() if d != trained]:
            values = g[mine].mean() if mine else pd.Series(dtype=float)
            if values.notna().any():
                rows.append({"direction": direction, "model": model, "domain": dom,
                             "scored": scored,
                             **{c.removesuffix(suffix).removeprefix(
                                 "" if scored == "trained" else f"{dom}_"): v
                                for c, v in values.items()}})
    return pd.DataFrame(rows)
