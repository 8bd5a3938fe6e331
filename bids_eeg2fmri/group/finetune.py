"""Group level, fMRI→EEG: base vs fine-tuned models (``--finetune``) and sliding-window vs segment
models (``--reconstruct segments``), per held-out participant.

Base models train on the other participants of each fold (*k* folds over subjects, as the seed);
then, per held-out participant,

- ``--finetune``: :func:`~bids_eeg2fmri.training.finetune.finetune_subject` — fine-tuned on the first
  half of each run, both scored on the buffered rest;
- ``--reconstruct segments``: :func:`~bids_eeg2fmri.training.segments.compare_segments` — the base
  model and one fine-tuned model per temporal segment, both scored on every sample.

Writes ``group/direction-fmri2eeg_desc-finetune_metrics.tsv``: one row per model, fold, subject,
comparison (``finetune``/``segments``) and stage (``base``/``finetuned``, ``sliding``/
``segments``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_write_text
from ..config import Config
from ..data.splits import make_folds
from ..data.windows import index_samples
from ..errors import UsageError
from ..training.core import fit
from ..training.finetune import finetune_settings, finetune_subject
from ..training.options import TrainConfig
from ..training.segments import compare_segments

CAPTION = ("Means over held-out participants. finetune: the base model (trained on the other "
           "participants) and the same model fine-tuned on the first half of each of the "
           "participant's runs, both scored on the rest after a buffer of window + HRF reach. "
           "segments: the base model and one model per temporal segment of each run (fine-tuned "
           "on the participant's samples outside that segment, buffered), both scored on every "
           "sample. Each comparison's two stages share test samples and EEG units.")
#: Scores the group report shows side by side.
SHOWN = ("mse", "r_overall", "r_bins", "r_driven")


def finetune_path(out_dir: Path) -> Path:
    """``OUT/group/direction-fmri2eeg_desc-finetune_metrics.tsv``."""
    return out_dir / "group" / "direction-fmri2eeg_desc-finetune_metrics.tsv"


def wanted(config: Config) -> bool:
    """Whether the group level runs the comparisons of this module (usage error 64 for voxel
    components, which are fitted per fold: the comparisons read atlas regions)."""
    gr = config.group
    if not (gr.finetune or gr.reconstruct == "segments") or gr.direction == "eeg2fmri":
        return False
    if gr.fmri_input == "pca":
        raise UsageError("--finetune and --reconstruct segments at the group level compare "
                         "models on atlas regions; use --fmri-input regions")
    return True


def driven_cells(groups: dict[str, list[str]] | None) -> list[str]:
    """The simulator's band × channel-group cells (sources are named ``<region>_<band>``)."""
    return [f"r_{g.rsplit('_', 1)[-1]}_{g}" for g in (groups or {})]


def finetune_comparison(config: Config, runs: list, spec: Any, models: list[str], window: Any,
                        score_options: dict[str, Any], driven: list[str]) -> pd.DataFrame:
    """Run the comparisons of the module docstring; ``driven`` names the simulator's band ×
    channel-group cells (``r_driven`` is their mean r; empty for real data)."""
    gr, ex = config.group, config.execution
    cfg = TrainConfig.from_config(config)
    samples = index_samples(runs, window)
    n_subjects = samples["subject"].nunique()
    folds = make_folds(samples, "kfold", spec=window, tr=spec.tr, k=min(gr.cv_folds, n_subjects),
                       seed=ex.random_seed)
    subjects = samples["subject"].to_numpy()
    records = []
    for name in models:
        ft_cfg = finetune_settings(cfg, name, "fmri2eeg")
        for fold in folds:
            base = fit(runs, spec, name, direction="fmri2eeg", window=window, samples=samples,
                       rows=fold.train, val_rows=np.empty(0, dtype=int), train_config=cfg)
            for subject in dict.fromkeys(subjects[fold.test]):
                rows = fold.test[subjects[fold.test] == subject]
                stages = {}
                if gr.finetune:
                    *_, ev = finetune_subject(base, runs, samples, rows, ft_cfg,
                                                    device=ex.device, **score_options)
                    stages["finetune"] = ev
                if gr.reconstruct == "segments":
                    stages["segments"] = compare_segments(base, runs, samples, rows, ft_cfg,
                                                          gr.segments, device=ex.device,
                                                          **score_options)
                for comparison, evs in stages.items():
                    for stage, e in evs.items():
                        cells = [e.metrics[c] for c in driven if c in e.metrics]
                        records.append({"model": name, "fold": fold.name, "subject": subject,
                                        "comparison": comparison, "stage": stage,
                                        "n_test": len(e.samples), **e.metrics,
                                        "r_driven": float(np.mean(cells)) if cells else np.nan})
    return pd.DataFrame.from_records(records)


def write_finetune(out_dir: Path, table: pd.DataFrame) -> Path:
    """Write the comparison table; returns its path."""
    path = finetune_path(out_dir)
    atomic_write_text(path, table.to_csv(sep="\t", index=False, na_rep="n/a",
                                         float_format="%.6g"))
    return path


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over participants of the shown scores per model, comparison and stage."""
    cols = [c for c in SHOWN if c in table and table[c].notna().any()]
    return table.groupby(["model", "comparison", "stage"], sort=False)[cols].mean().reset_index()
