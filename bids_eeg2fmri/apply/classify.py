"""Apply a saved ``--classify`` classifier (``models/classifier/<column>_<objective>/``) to new
participants: ``participant --model-dir <that folder>``.

The classifier reads the EEG latent of the frozen EEG→fMRI synthesis model it was trained on,
which the group level saved beside it (``models/eeg2fmri/<model>/``, named in the card's
``Encoder``). Both folders are read as data only (safetensors + JSON, see
:mod:`bids_eeg2fmri.modelfiles`), every file checked against the SHA-256 its card lists, and the
encoder's weights against the digest the classifier card recorded, so a retrained encoder is
never silently paired with a head fitted on another one.

Every window of each selected participant's runs with a spectrogram (paired and EEG-only alike)
is encoded and scored by the head; the participant's prediction is the class of the highest mean
window score, as in the group level's cross-validation. Written per participant:
``sub-XX/eeg/sub-XX_desc-classify<Column><Objective>_predictions.tsv`` (+ JSON sidecar): one row
with the predicted group, the mean window score of every class and, for the cross-entropy head,
the class probabilities (the normalised geometric mean of the window probabilities).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..bids.derivatives import atomic_write_text, entity_label, write_sidecar
from ..data.windows import index_samples
from ..errors import DataError
from ..group import card as C
from ..group.classify import CLASSIFIER_CARD_FORMAT, CLASSIFIER_FORMAT
from ..group.runfiles import find_runs
from ..modelfiles import WEIGHTS_FILE, read_model_file, verify_files
from ..training.classifier import LinearHead, Reducer, encoder_features, weights_digest
from ..training.distributed import is_main_process
from ..training.model import FittedModel, load_model

log = logging.getLogger("bids_eeg2fmri")


def is_classifier_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder``'s card says it holds a ``--classify`` classifier."""
    try:
        card = json.loads((Path(folder) / C.CARD_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and card.get("Format") == CLASSIFIER_CARD_FORMAT


@dataclass
class SavedClassifier:
    """A classifier folder read back: its card, head, and the frozen encoder it reads."""

    folder: Path
    card: dict[str, Any]
    column: str
    classes: list[str]
    reducer: Reducer
    head: LinearHead
    encoder: FittedModel
    encoder_card: dict[str, Any]
    encoder_dir: Path

    def class_scores(self, features: np.ndarray) -> np.ndarray:
        """Per-window class scores ``(n_windows, n_classes)`` of encoder features."""
        scores = np.full((len(features), len(self.classes)), -np.inf)
        scores[:, self.head.classes_] = self.head.scores(self.reducer.transform(features))
        return scores


def load_classifier(folder: str | os.PathLike) -> SavedClassifier:
    """Read and check a classifier folder and its encoder (module docstring).

    Raises
    ------
    DataError
        One line naming the folder or file (exit 65): missing or changed files, another format,
        an encoder folder that is missing or holds other weights than the classifier was
        trained on.
    """
    folder = Path(folder)
    path = folder / C.CARD_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no model card ({C.CARD_FILE}) in the model folder", path=folder) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the model card: {exc}", path=path) from None
    files, encoder = card.get("Files"), card.get("Encoder")
    if (card.get("Format") != CLASSIFIER_CARD_FORMAT or not isinstance(files, dict)
            or WEIGHTS_FILE not in files or not isinstance(encoder, dict)):
        raise DataError("not a bids_eeg2fmri classifier card (Format/Files/Encoder)", path=path)
    verify_files(folder, files)  # every listed file's SHA-256, the weights' included
    state = read_model_file(folder / WEIGHTS_FILE)
    if state.get("format") != CLASSIFIER_FORMAT:
        raise DataError("not a bids_eeg2fmri classifier file", path=folder / WEIGHTS_FILE)
    # The group level writes models/classifier/<name>/ beside models/eeg2fmri/<model>/.
    encoder_dir = folder.parent.parent / "eeg2fmri" / str(encoder.get("Model"))
    encoder_card = C.read_card(encoder_dir)
    fitted = load_model(encoder_dir / C.MODEL_FILE)
    expected = encoder.get("WeightsSHA256")
    if expected and weights_digest(fitted.model) != expected:
        raise DataError(f"the encoder's weights differ from those the classifier was trained on "
                        f"({encoder_dir}); retrain the classifier with this encoder", path=folder)
    return SavedClassifier(folder, card, str(state["column"]), [str(c) for c in state["classes"]],
                           Reducer.from_state(state["reducer"]), LinearHead.from_state(state["head"]),
                           fitted, encoder_card, encoder_dir)


def check_classifier_dir(folder: Path, plans: list) -> dict[str, Any]:
    """Preflight of ``--model-dir`` holding a classifier: every file checked and parsed, and the
    selection must hold EEG; returns the card (one-line :class:`DataError` otherwise)."""
    clf = load_classifier(folder)
    if not any(pair.eeg is not None for plan in plans for pair in plan.pairs):
        raise DataError("the classifier reads EEG, but the selected runs have none", path=folder)
    return clf.card


def predict_participant(clf: SavedClassifier, runs: list, samples: pd.DataFrame) -> dict[str, Any]:
    """The predicted group of one participant from the windows ``samples`` of its ``runs``.

    Returns
    -------
    dict
        ``predicted``, ``n_windows``, ``score_<class>`` (mean window score) and, for the
        cross-entropy head, ``probability_<class>``.
    """
    scores = clf.class_scores(encoder_features(clf.encoder, runs, samples)).mean(axis=0)
    row: dict[str, Any] = {"predicted": clf.classes[int(np.argmax(scores))],
                           "n_windows": int(len(samples))}
    row.update({f"score_{c}": float(s) for c, s in zip(clf.classes, scores)})
    if clf.head.objective == "crossentropy":
        prob = np.exp(scores - np.logaddexp.reduce(scores))
        row.update({f"probability_{c}": float(p) for c, p in zip(clf.classes, prob)})
    return row


def prediction_path(out_dir: Path, subject: str, clf: SavedClassifier) -> Path:
    """``sub-XX/eeg/sub-XX_desc-classify<Column><Objective>_predictions.tsv``."""
    desc = f"classify{entity_label(clf.column).capitalize()}{clf.head.objective.capitalize()}"
    return out_dir / f"sub-{subject}" / "eeg" / f"sub-{subject}_desc-{desc}_predictions.tsv"


def classify_participants(out_dir: Path, subjects: list[str], model_dir: Path) -> list[Path]:
    """Predict the group of every participant of ``subjects`` with EEG; the TSVs written."""
    # Circular at import time: apply.run imports this module's entry point.
    from .run import eeg_run_arrays

    clf = load_classifier(model_dir)
    by_subject: dict[str, list] = {}
    for run in find_runs(out_dir, participant_label=subjects):
        if run.spectrogram is None:
            log.info("%s: no EEG for the classifier %s", run.key, clf.card.get("Name"))
            continue
        by_subject.setdefault(run.subject, []).append(run)
    written = []
    for subject in sorted(by_subject):
        files = by_subject[subject]
        arrays = [eeg_run_arrays(run, clf.encoder, clf.encoder_card)[0] for run in files]
        try:
            samples = index_samples(arrays, clf.encoder.window)
        except DataError:
            raise DataError(f"the EEG covers fewer than the encoder's "
                            f"{clf.encoder.window.span()}-volume window",
                            path=files[0].spectrogram) from None
        row = {"participant_id": f"sub-{subject}", **predict_participant(clf, arrays, samples)}
        if not is_main_process():
            continue
        path = prediction_path(out_dir, subject, clf)
        atomic_write_text(path, pd.DataFrame([row]).to_csv(sep="\t", index=False,
                                                           float_format="%.6g"))
        write_sidecar(path, _sidecar(clf, files, out_dir, model_dir))
        log.info("%s: predicted %s = %s (%s)", f"sub-{subject}", clf.column, row["predicted"], path)
        written.append(path)
    return written


def _sidecar(clf: SavedClassifier, files: list, out_dir: Path, model_dir: Path) -> dict[str, Any]:
    probs = {f"probability_{c}": {"Description": f"probability of {c!r}: normalised geometric "
                                                 "mean of the window probabilities"}
             for c in clf.classes} if clf.head.objective == "crossentropy" else {}
    score_words = ("mean window log-probability" if clf.head.objective == "crossentropy"
                   else "mean over windows of minus the squared distance to the class centroid")
    return {
        "Description": f"Predicted {clf.column!r} group of the participant from its EEG, by the "
                       f"classifier {clf.card.get('Name')!r} ({clf.head.objective} head on the "
                       f"frozen EEG→fMRI encoder {clf.encoder.name!r})",
        "participant_id": {"Description": "participant"},
        "predicted": {"Description": f"predicted {clf.column!r} group (class of the highest "
                                     "mean window score)", "Levels": {c: c for c in clf.classes}},
        "n_windows": {"Description": "EEG windows the prediction averages"},
        **{f"score_{c}": {"Description": f"{score_words} of {c!r}"} for c in clf.classes},
        **probs,
        "Sources": [f"bids::{Path(os.path.relpath(f.spectrogram, out_dir)).as_posix()}"
                    for f in files],
        "Model": {"Path": os.fspath(model_dir), "Name": clf.card.get("Name"),
                  "Objective": clf.head.objective, "Classes": clf.classes,
                  "TrainedOn": sorted((clf.card.get("Data") or {}).get("Participants") or {}),
                  "CrossValidation": {k: v for k, v in (clf.card.get("CrossValidation") or {}).items()
                                      if k in ("balanced_accuracy", "chance", "p_value")},
                  "Encoder": os.fspath(clf.encoder_dir),
                  "Software": f"bids_eeg2fmri {__version__}"}}
