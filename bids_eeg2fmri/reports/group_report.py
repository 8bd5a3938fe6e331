"""The group report: cross-validation tables and figures, single-region analysis, FC."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..bids.derivatives import atomic_write_text
from .page import LOGGER, FigureItem, environment, now

# ----------------------------------------------------------------------------- group
CV_REQUIRED = ("model", "direction", "fold", "mse", "r")
CV_OPTIONAL = ("test_subject", "baseline_mean_mse", "baseline_subject_mse", "noise_ceiling")
#: Columns of the summary table, in this order, where a direction has them; per-region and
#: per-cell scores stay in the per-fold table and the metrics TSVs.
CV_HEADLINE = ("mse", "r", "baseline_mean_mse", "baseline_subject_mse", "r_driven",
               "noise_ceiling", "rmse", "r_spatial", "r_roi", "ssim_brain", "ssim_volume3d",
               "ssim_slices2d", "psnr", "psnr_brain", "fc_similarity", "r_pooled_db", "r_overall",
               "r_bins")


def _direction_columns(table: pd.DataFrame, direction: str, candidates: Sequence[str],
                       suffix: str = "") -> list[str]:
    """The candidates with at least one finite value in the rows of ``direction``."""
    rows = table[table["direction"] == direction]
    out = []
    for c in candidates:
        col = rows.get(c + suffix)
        if col is None:
            continue
        values = pd.to_numeric(col, errors="coerce") if c not in ("model", "fold", "test_subject",
                                                                   "direction") else col
        if values.notna().any():
            out.append(c)
    return out


def summarise_cv(cv_table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SEM over folds of every numeric column, per direction and model.

    Parameters
    ----------
    cv_table
        One row per model × direction × fold (see :func:`write_group_report`).

    Returns
    -------
    pandas.DataFrame
        One row per (direction, model): ``n_folds`` and ``<metric>_mean``, ``<metric>_sem`` for
        every numeric column other than ``fold``; ``beats_baselines`` is true when the model's
        mean MSE is below both baselines' mean MSE (the columns that exist).
    """
    missing = [c for c in CV_REQUIRED if c not in cv_table.columns]
    if missing:
        raise ValueError(f"cv_table lacks columns {missing}; needs {list(CV_REQUIRED)}")
    metrics = [c for c in cv_table.columns
               if c not in ("model", "direction", "fold", "test_subject")
               and pd.api.types.is_numeric_dtype(cv_table[c])]
    rows = []
    for (direction, model), g in cv_table.groupby(["direction", "model"], sort=False):
        row: dict[str, Any] = {"direction": direction, "model": model, "n_folds": len(g)}
        for c in metrics:
            v = g[c].to_numpy(float)
            v = v[np.isfinite(v)]
            row[f"{c}_mean"] = float(v.mean()) if v.size else float("nan")
            sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
            # Identical fold values leave rounding noise (1e-17), not a spread worth printing.
            if math.isfinite(sem) and sem <= 1e-12 * max(1.0, abs(row[f"{c}_mean"])):
                sem = 0.0
            row[f"{c}_sem"] = sem
        base = [row[f"{b}_mean"] for b in ("baseline_mean_mse", "baseline_subject_mse")
                if f"{b}_mean" in row and math.isfinite(row[f"{b}_mean"])]
        row["beats_baselines"] = bool(base) and all(row["mse_mean"] < b for b in base)
        rows.append(row)
    return pd.DataFrame(rows)


def write_group_report(out_dir: str | os.PathLike, cv_table: pd.DataFrame,
                       learning_curves: Mapping[str, pd.DataFrame] | None = None,
                       single_region: pd.DataFrame | None = None,
                       fc: Mapping[str, Any] | None = None, *,
                       notes: Sequence[str] = (), warnings: Sequence[str] = (),
                       extra_sections: Sequence[Mapping[str, Any]] = (),
                       tables: Sequence[tuple[str, str, pd.DataFrame]] = (),
                       banner: str | None = None,
                       extra_tables: Sequence[tuple[str, str, str, pd.DataFrame]] = ()) -> Path:
    """Write ``OUT/group.html`` with its figures in ``OUT/group/figures/``.

    Parameters
    ----------
    out_dir
        The derivatives dataset.
    cv_table
        One row per model × direction × fold. Required columns: ``model`` (str), ``direction``
        (``eeg2fmri`` or ``fmri2eeg``), ``fold`` (int or str), ``mse`` (float), ``r`` (float;
        the direction's headline Pearson r). Optional: ``test_subject`` (str; several joined by
        commas), ``baseline_mean_mse`` (training-mean prediction), ``baseline_subject_mse``
        (the subject-mean baseline), ``noise_ceiling`` (r, simulated data). Any further numeric
        column (``ssim``, ``psnr``, ``fc_similarity``, ``r_alpha_occipital`` …) is summarised
        and tabulated too.
    learning_curves
        Label (e.g. ``"cnn (eeg2fmri)"``) → DataFrame with ``epoch``, ``train_loss``, optional
        ``val_loss`` and optional ``fold`` (the trainer's ``losses.tsv`` rows, concatenated with a
        ``fold`` column). ``None`` or empty: a note says none were recorded.
    single_region
        The single-region analysis table (``analysis.single_region``'s ``table``): ``region``,
        ``cell``, ``mean_improvement``, ``sem_improvement``, optional ``statistic``, ``p``,
        ``q``, ``significant``, ``rank``.
    fc
        Functional connectivity: ``{"measured": (R, R) array, "predicted": {model: (R, R)
        array}, "labels": [R names] (optional)}``.
    notes
        Free lines shown under the title (e.g. data used, CV regime).
    warnings
        Lines for the report's warnings section.
    extra_sections
        Further sections, each ``{"id", "title", "paragraphs": [str], "figures": [FigureItem],
        "tables": [{"caption", "columns", "rows"}]}`` (classification, attribution and
        attention: :mod:`.calhas_sections`).
    tables
        ``(title, caption, table)`` shown after the cross-validation tables (the evaluation's
        baselines and the papers' numbers, :mod:`bids_eeg2fmri.evaluation.comparison`).
    banner
        A line shown prominently at the top (a leaky split was run).
    extra_tables
        Further sections, each ``(key, title, caption, table)`` shown as a plain table (e.g. the
        fMRI→EEG base vs fine-tuned comparison).

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    from . import figures as F

    out = Path(out_dir)
    fig_dir = out / "group" / "figures"
    errors: list[str] = []
    items: dict[str, FigureItem] = {}

    def figure(key: str, title: str, caption: str, draw: Callable[[Path], Any],
               missing: str | None) -> None:
        path = fig_dir / f"desc-{key}_group.svg"
        if missing:
            items[key] = FigureItem(title, caption, note=f"Not available because {missing}.")
            return
        try:
            draw(path)
        except Exception as exc:  # keep the rest of the report
            LOGGER.warning("group report figure %r failed: %s", title, exc, exc_info=True)
            errors.append(f"{title}: {type(exc).__name__}: {exc}")
            items[key] = FigureItem(title, caption, note=f"Not available because drawing it "
                                                         f"failed ({type(exc).__name__}: {exc}).")
            return
        items[key] = FigureItem(title, caption, src=f"group/figures/{path.name}")

    summary = summarise_cv(cv_table)
    figure("scores", "Cross-validated scores",
           "Top: Pearson r per model (mean ± SEM over folds) over all targets and, on "
           "simulated data, over the targets the simulated sources drive, with their noise "
           "ceiling in red. Bottom: MSE of the model and of the two baselines (training mean; "
           "each test subject's own mean from its other runs or blocks — a model beats it by "
           "predicting fluctuations).",
           lambda p: F.plot_cv_scores(summary, p),
           "the CV table is empty" if summary.empty else None)
    figure("learningcurves", "Learning curves",
           "Training and validation loss per epoch; one line per fold. Validation loss rising "
           "while training loss falls is overfitting (early stopping keeps the best epoch).",
           lambda p: F.plot_learning_curves(learning_curves or {}, p),
           None if learning_curves else "no model recorded per-epoch losses (closed-form models "
                                       "such as ridge have none)")
    figure("regionband", "Single-region analysis: region × band",
           "Improvement in held-out r from adding one region to the non-grey-matter signal, per "
           "band cell; * marks q < 0.05 (Benjamini–Hochberg) with a positive improvement.",
           lambda p: F.plot_region_band(single_region, p),
           None if single_region is not None and len(single_region) else
           "the single-region analysis was not run")
    fc_missing = None
    if not fc or "measured" not in fc or not fc.get("predicted"):
        fc_missing = "no functional-connectivity matrices were given (needs region targets)"
    figure("fc", "Functional connectivity: predicted vs measured",
           "Correlation matrices of the region time series, measured and as predicted by each "
           "model, on one colour scale; similarity r is the correlation of their upper "
           "triangles.",
           lambda p: F.plot_fc_matrices(fc["measured"], fc["predicted"], p,
                                        labels=fc.get("labels")),
           fc_missing)

    directions = list(dict.fromkeys(summary["direction"])) if not summary.empty else []
    metric_cols = {d: _direction_columns(summary, d, CV_HEADLINE, "_mean") for d in directions}
    fold_cols = {d: _direction_columns(
        cv_table, d, [c for c in ("model", "fold", "test_subject") if c in cv_table]
        + [c for c in cv_table.columns if c not in ("direction", "model", "fold", "test_subject")])
        for d in directions}
    sr_table = None
    if single_region is not None and len(single_region):
        sr_table = single_region.sort_values(
            [c for c in ("cell", "rank") if c in single_region]).to_dict("records")
    html = environment().get_template("group.html").render(
        summary=summary.to_dict("records"), metric_cols=metric_cols,
        folds=cv_table.to_dict("records"), fold_cols=fold_cols, directions=directions,
        figures=items, single_region=sr_table,
        sr_cols=list(single_region.columns) if sr_table else [],
        notes=list(notes), warnings=list(warnings), errors=errors, banner=banner,
        extra_sections=list(extra_sections),
        tables=[{"title": t, "caption": c, "cols": list(df.columns),
                 "rows": df.to_dict("records")} for t, c, df in tables if len(df)],
        extra_tables=[{"key": k, "title": t, "caption": c, "cols": list(df.columns),
                       "rows": df.to_dict("records")} for k, t, c, df in extra_tables],
        version=__version__, date=now())
    return atomic_write_text(out / "group.html", html)
