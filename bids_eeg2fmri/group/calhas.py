"""The group level's Calhas extensions in two calls for :mod:`.run`: :func:`check_calhas` before
anything is trained (``--classify`` column and ``--attribution-region`` name), and
:func:`calhas_outputs` after the EEG→fMRI models are fitted (classification, attribution, the
attention map, and their report sections)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Config


def check_calhas(config: Config, datasets: dict[str, Any]) -> None:
    """Exit 64/66/18 for an unusable ``--classify`` column or ``--attribution-region``."""
    gr = config.group
    data = datasets.get("eeg2fmri")
    if data is None:
        return
    if gr.classify:
        from .classify import participant_labels

        participant_labels(config.execution.bids_dir, gr.classify, data.subjects)
    if gr.attribution:
        from .explain import attribution_targets

        attribution_targets(gr.attribution_region, data)


def calhas_outputs(config: Config, data: Any, finals: dict[str, tuple], models: list[str],
                   out: Path, bands: dict[str, list[float]], write: bool,
                   cv_table: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Run what the options ask for on the final EEG→fMRI models; the report sections.
    ``cv_table`` (the direction's per-fold scores) picks the classifier's default encoder."""
    gr = config.group
    sections: list[dict[str, Any]] = []
    if gr.classify:
        from ..reports.calhas_sections import classification_section
        from .classify import encoder_model, run_classification

        name, why = encoder_model(gr.classify_model, models, cv_table)
        result = run_classification(config, data, finals[name][0], name, out, write=write,
                                    selection=why)
        sections.append(classification_section(out, result))
    if gr.attribution or any(hasattr(f.model, "attention_map") for f, *_ in finals.values()):
        from ..data.montage import channel_positions
        from ..reports.calhas_sections import attribution_section
        from .explain import explain_models

        explanations = explain_models(config, data, finals, out, bands=bands, write=write)
        positions, _ = channel_positions(list(data.spec.channels))
        sections.append(attribution_section(out, explanations, positions))
    return sections
