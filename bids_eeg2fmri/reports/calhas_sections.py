"""Group-report sections of the Calhas extensions: classification (scores, confusion matrices),
attribution topomaps and the topographical attention map. Each figure that fails to draw becomes
a note in its slot, as in the rest of the group report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .page import LOGGER, FigureItem


def _figure(out: Path, key: str, title: str, caption: str,
            draw: Callable[[Path], Any]) -> FigureItem:
    path = out / "group" / "figures" / f"desc-{key}_group.svg"
    try:
        draw(path)
    except Exception as exc:  # keep the rest of the report
        LOGGER.warning("group report figure %r failed: %s", title, exc, exc_info=True)
        return FigureItem(title, caption, note=f"Not available because drawing it failed "
                                               f"({type(exc).__name__}: {exc}).")
    return FigureItem(title, caption, src=f"group/figures/{path.name}")


def classification_section(out: Path, classification: Any) -> dict[str, Any]:
    """Scores table and confusion matrices of ``--classify`` (a
    :class:`~bids_eeg2fmri.group.classify.ClassificationOutput`)."""
    from .figures.calhas import plot_confusion

    res = classification.results
    rows = [{"objective": k, **v.summary()} for k, v in res.items()]
    first = next(iter(res.values()))
    subtitles = {k: f"bal. acc. {v.balanced_accuracy:.2f}, p = {v.p_value:.3g}"
                 for k, v in res.items()}
    fig = _figure(out, "classification", "Confusion matrices (held-out participants)",
                  "Participants by true (rows) and predicted (columns) group, each predicted "
                  "by a classifier that never saw them; one matrix per objective.",
                  lambda p: plot_confusion({k: v.confusion for k, v in res.items()},
                                           first.classes, p, subtitles=subtitles))
    return {"id": "classification", "title": f"Classification: {classification.column}",
            "paragraphs": [
                f"Participants classified by participants.tsv column '{classification.column}' "
                f"from their EEG through the frozen {classification.model} synthesis model "
                "(Calhas 2023): a linear head on the encoder's window features, "
                "cross-validated by participant; a participant's prediction is the group its "
                "windows favour on average. Chance is 1 / groups of the balanced accuracy; "
                "p is the permutation test of participant labels (label permutations × the "
                "same cross-validation)."],
            "figures": [fig],
            "tables": [{"caption": "Cross-validated classification",
                        "columns": ["objective", "n_participants", "balanced_accuracy",
                                    "window_balanced_accuracy", "chance", "p_value",
                                    "n_permutations"], "rows": rows}]}


def attribution_section(out: Path, explanations: Any,
                        positions: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Topomaps per band of every model's relevance, and the attention map(s)."""
    from .figures.calhas import plot_attention, plot_band_topomaps

    figures, paragraphs = [], []
    if explanations.bands:
        paragraphs.append(
            f"Relevance of the EEG inputs for {explanations.region}: mean |attribution| over "
            "samples, summed over time lags and each band's frequencies, normalised per model. "
            "Methods: " + "; ".join(f"{k}: {v}" for k, v in explanations.methods.items()) + ".")
        figures.append(_figure(
            out, "attribution", "Attribution topomaps",
            "Rows: models; columns: EEG bands; colour: share of the model's relevance on each "
            "electrode (one scale per model).",
            lambda p: plot_band_topomaps(explanations.bands, positions, p)))
    if explanations.attention:
        figures.append(_figure(
            out, "attention", "Topographical attention",
            "Mean sparsemax attention of topo-attention over the samples: each row re-expresses "
            "one channel as a mixture of the columns it attends to (rows sum to 1).",
            lambda p: plot_attention(explanations.attention, p)))
    return {"id": "attribution", "title": "Attribution and attention", "paragraphs": paragraphs,
            "figures": figures, "tables": []}
