"""``--classify COLUMN``: classify participants by a ``participants.tsv`` column from their EEG,
through the frozen EEG→fMRI synthesis model (Calhas 2023; numerics in
:mod:`bids_eeg2fmri.training.classifier`).

The synthesis model is the final one the group level fitted on every paired participant; it
never sees the labels, so holding out participants for the classifier's cross-validation is
enough to keep the labels out of training. Writes, per objective:

- ``group/direction-eeg2fmri_model-<m>_desc-classify<Column>_stats.tsv`` — one row per
  objective: balanced accuracy (participants and windows), chance, permutation p-value;
- ``group/direction-eeg2fmri_model-<m>_desc-classify<Column>_predictions.tsv`` — held-out
  prediction and mean class scores of every participant;
- ``models/classifier/<column>_<objective>/`` — the head refitted on every participant
  (``model.safetensors``: scaling, principal components and linear map; ``model.json``: the card
  with the cross-validated scores and the encoder it reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_write_text, entity_label, write_json
from ..errors import DataError, ExitCode, UsageError, UserError
from ..modelfiles import WEIGHTS_FILE, sha256, write_model_file
from ..models import registry
from ..training.classifier import (ClassificationResult, cross_validate_groups, encoder_features,
                                   fit_final_head, weights_digest)
from . import card as C

log = logging.getLogger("bids_eeg2fmri")

PAPER = ("Calhas, Romero & Henriques 2023, EEG to fMRI synthesis (EEG-to-fMRI package): "
         "classification on the synthesized views, likelihood and contrastive variants")
CLASSIFIER_FORMAT = "bids_eeg2fmri-classifier-1"
CLASSIFIER_CARD_FORMAT = "bids_eeg2fmri-classifier-card-1"


def participant_labels(bids_dir: str | Path, column: str, subjects: list[str]) -> dict[str, str]:
    """``subject → label`` from ``participants.tsv`` for ``subjects``.

    Raises
    ------
    UsageError
        64 when the file lacks ``column``.
    UserError
        66 without ``participants.tsv``; 18 when fewer than two labelled participants remain in
        each of two groups (participants with ``n/a`` are left out).
    """
    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        raise UserError("--classify needs participants.tsv in the BIDS dataset", ExitCode.NO_INPUT,
                        path=path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read participants.tsv: {exc}", path=path) from None
    if column not in table.columns:
        raise UsageError(f"--classify {column}: participants.tsv has no such column (it has "
                         f"{', '.join(c for c in table.columns if c != 'participant_id')})",
                         path=path)
    ids = table["participant_id"].str.replace(r"^sub-", "", regex=True)
    values = dict(zip(ids, table[column].str.strip()))
    labels = {s: values[s] for s in subjects if values.get(s, "n/a") not in ("", "n/a")}
    counts = pd.Series(list(labels.values())).value_counts()
    if (counts >= 2).sum() < 2:
        raise UserError(f"--classify {column}: needs at least two groups of two participants "
                        f"with paired EEG and BOLD, found {dict(counts)}",
                        ExitCode.NO_DATA_SELECTED, path=path)
    return {s: v for s, v in labels.items() if counts[v] >= 2}


def encoder_model(requested: str, models: list[str],
                  cv_table: pd.DataFrame | None = None) -> tuple[str, str]:
    """The EEG→fMRI model whose encoder is frozen, and why it was chosen (for the card).

    ``requested`` when given; else the deep model with the highest mean held-out r of this
    run's leak-free cross-validation (``cv_table``: the group level's per-fold table), since the
    encoder that synthesizes best is the one whose latent carries most of the EEG's coupling to
    BOLD; else (no table) the first deep model of ``models``. Ridge is chosen only when no deep
    model was trained: it is linear, and under per-participant EEG normalisation a linear map
    passes no group difference on.
    """
    if requested:
        if requested not in models:
            raise UsageError(f"--classify-model {requested!r} is not among the trained EEG→fMRI "
                             f"models ({', '.join(models)})")
        return requested, "--classify-model"
    deep = [m for m in models if not registry.entry(m, "eeg2fmri").closed_form]
    if not deep:
        return models[0], "the only trained EEG→fMRI model is closed-form"
    scores = _cv_r(cv_table, deep)
    if not scores:
        return deep[0], "first deep model of --models (no cross-validated scores)"
    best = max(deep, key=lambda m: (scores.get(m, -np.inf), -deep.index(m)))
    listed = ", ".join(f"{m} {scores[m]:.3f}" for m in deep if m in scores)
    return best, f"deep model with the best cross-validated mean r ({listed})"


def _cv_r(table: pd.DataFrame | None, models: list[str]) -> dict[str, float]:
    """Mean over leak-free folds of the held-out r of each of ``models`` in ``table``."""
    if table is None or not len(table) or "r" not in table:
        return {}
    rows = table[table["model"].isin(models)]
    if "split" in rows:
        rows = rows[rows["split"] == "leak-free"]
    if "direction" in rows:
        rows = rows[rows["direction"] == "eeg2fmri"]
    means = rows.groupby("model")["r"].mean()
    return {m: float(v) for m, v in means.items() if np.isfinite(v)}


@dataclass
class ClassificationOutput:
    """What the report shows: per objective the result, and the files written."""

    column: str
    model: str
    selection: str = ""
    results: dict[str, ClassificationResult] = field(default_factory=dict)


def run_classification(config: Any, data: Any, fitted: Any, model: str, out: Path,
                       write: bool = True, selection: str = "") -> ClassificationOutput:
    """Cross-validate the classifier(s) of ``--classify`` and write the outputs (module docstring).

    Parameters
    ----------
    config
        The resolved :class:`~bids_eeg2fmri.config.Config`.
    data
        The EEG→fMRI :class:`~bids_eeg2fmri.group.collect.GroupData`.
    fitted
        The final synthesis model ``model`` (fitted on every paired participant).
    selection
        Why ``model`` is the encoder (:func:`encoder_model`), recorded in the card.
    write
        False on non-main processes.
    """
    from ..data.windows import index_samples

    gr, seed = config.group, config.execution.random_seed
    column = gr.classify
    labels = participant_labels(config.execution.bids_dir, column, data.subjects)
    samples = index_samples(data.runs, fitted.window)
    samples = samples[samples["subject"].isin(labels)].reset_index(drop=True)
    features = encoder_features(fitted, data.runs, samples)
    objectives = (["crossentropy", "contrastive"] if gr.classify_objective == "both"
                  else [gr.classify_objective])
    result = ClassificationOutput(column, model, selection)
    rows, preds = [], []
    for objective in objectives:
        log.info("classify %s from the frozen %s encoder (%s head, %d participant(s), %d "
                 "permutation(s))", column, model, objective, len(labels),
                 gr.classify_permutations)
        res = cross_validate_groups(features, samples["subject"].to_numpy(), labels,
                                    objective=objective, folds=gr.cv_folds,
                                    permutations=gr.classify_permutations, seed=seed)
        result.results[objective] = res
        rows.append({"column": column, "encoder": model, "objective": objective, **res.summary()})
        preds.append(res.participants.assign(objective=objective))
        if write:
            _save_classifier(out / "models" / "classifier" / f"{entity_label(column)}_{objective}",
                             features, samples, labels, res, objective, column, model, fitted,
                             config, seed, selection)
    if write:
        stem = out / "group" / (f"direction-eeg2fmri_model-{entity_label(model)}_desc-classify"
                                f"{entity_label(column).capitalize()}")
        atomic_write_text(Path(f"{stem}_stats.tsv"), pd.DataFrame(rows).to_csv(
            sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
        atomic_write_text(Path(f"{stem}_predictions.tsv"), pd.concat(preds).to_csv(
            sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
    return result


def _save_classifier(folder: Path, features: np.ndarray, samples: pd.DataFrame,
                     labels: dict[str, str], res: ClassificationResult, objective: str,
                     column: str, model: str, fitted: Any, config: Any, seed: int,
                     selection: str) -> None:
    red, head = fit_final_head(features, samples["subject"].to_numpy(), labels, res.classes,
                               objective=objective, seed=seed)
    state = {"format": CLASSIFIER_FORMAT, "column": column, "classes": list(res.classes),
             "encoder": model, "reducer": red.state(), "head": head.state()}
    write_model_file(folder / WEIGHTS_FILE, state)
    card = {
        "Format": CLASSIFIER_CARD_FORMAT, "Name": f"{column} classifier",
        "Task": f"classify participants by participants.tsv column {column!r} from their EEG",
        "Paper": PAPER, "Objective": objective, "Classes": list(res.classes),
        "Encoder": {"Model": model, "Direction": "eeg2fmri", "Frozen": True,
                    "Features": "EEG latent of the synthesis model (see docs/models.md)",
                    "Paper": registry.entry(model, "eeg2fmri").paper,
                    "Folder": f"models/eeg2fmri/{model}", "Selection": selection,
                    # Checked when the classifier is applied (apply/classify.py): the encoder
                    # folder beside it must still hold these weights.
                    "WeightsSHA256": weights_digest(fitted.model)},
        "Data": {"Participants": {s: labels[s] for s in sorted(labels)},
                 "Windows": int(len(samples))},
        "CrossValidation": {"Folds": "participants held out, classes dealt over folds",
                            **C.json_safe(res.summary()),
                            "ConfusionMatrix": res.confusion.tolist()},
        "Limitations": ["a few participants give a coarse accuracy and permutation p-value",
                        "the synthesis encoder was fitted on every participant's EEG and BOLD "
                        "(never on the labels)"],
        "Dataset": C.dataset_identity(config.execution.bids_dir), "Software": C.software(),
        "Files": {WEIGHTS_FILE: sha256(folder / WEIGHTS_FILE)}}
    write_json(folder / C.CARD_FILE, C.json_safe(card))
