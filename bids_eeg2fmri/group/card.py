"""Model folders: ``model.safetensors``, the card ``model.json`` and the target/input label image.

A model folder (``OUT/models/<direction>/<name>/``) is everything ``--model-dir`` needs:

- ``model.safetensors`` — the fitted model, weights and JSON description (see
  :mod:`bids_eeg2fmri.modelfiles`; :meth:`bids_eeg2fmri.training.model.FittedModel.save`);
- ``model.json`` — the model card (:func:`model_card`), whose ``Direction`` tells the apply step
  which loader to use and whose ``Files`` pins the SHA-256 of every other file (checked before
  any of them is read);
- ``regions_dseg.nii.gz`` — the label image on the model grid: the EEG→fMRI region targets (label
  ``i`` is ``Data.Regions[i − 1]``; region predictions are painted into these voxels), the
  fMRI→EEG input regions (GM parts plus non-GM), or for voxel targets the mask (label 1).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .._version import __version__
from ..bids.derivatives import atomic_path, write_json
from ..errors import DataError
from ..modelfiles import LEGACY_FILE, WEIGHTS_FILE, legacy_error, sha256, verify_files

MODEL_FILE = WEIGHTS_FILE
CARD_FILE = "model.json"
LABELS_FILE = "regions_dseg.nii.gz"
CARD_FORMAT = "bids_eeg2fmri-model-card-1"
DIRECTIONS = ("eeg2fmri", "fmri2eeg")


def n_parameters(model: Any) -> int:
    """Number of trainable values of a torch module (closed-form ridge included)."""
    return int(sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if "weight" in name or "bias" in name))


def software() -> dict[str, str]:
    """Versions of the software that trained the model."""
    from ..reports.methods import software_versions

    return {"bids_eeg2fmri": __version__, "Python": platform.python_version(),
            **{k: v for k, v in software_versions().items() if k != "bids_eeg2fmri"}}


def model_card(*, name: str, direction: str, fitted: Any, data: dict[str, Any],
               window: dict[str, Any], train: dict[str, Any], cv: dict[str, Any],
               config: dict[str, Any], model_file: Path, entry: Any) -> dict[str, Any]:
    """Assemble the model card.

    Parameters
    ----------
    name, direction
        Registry name and direction.
    fitted
        The final model (:class:`~bids_eeg2fmri.training.model.FittedModel`).
    data
        ``GroupData.describe()`` plus ``NumberOfSamples``.
    window
        Sample cutting (``WindowSpec``/``SequenceSpec`` as a dict, with seconds).
    train
        Training settings (``TrainConfig`` as a dict).
    cv
        Cross-validation summary: regime, folds, per-metric mean/SEM of the model and the
        baselines, noise ceiling.
    config
        The ``[group]`` configuration.
    model_file
        The written ``model.safetensors`` (its checksum goes into the card).
    entry
        The registry entry (paper, class).

    Returns
    -------
    dict
        JSON-compatible; no dates, so that repeating a run with the same seed repeats the card.
    """
    prov = {k: v for k, v in fitted.provenance.items() if k not in ("created",)}
    return {
        "Format": CARD_FORMAT,
        "Name": name,
        "Direction": direction,
        "Description": ("Predicts BOLD on the model grid from the EEG spectrogram"
                        if direction == "eeg2fmri" else
                        "Predicts the EEG spectrogram from region BOLD series"),
        "Architecture": {"Class": f"{type(fitted.model).__module__}.{type(fitted.model).__name__}",
                         "Paper": entry.paper, "Parameters": n_parameters(fitted.model),
                         "Hyperparameters": fitted.hparams,
                         "Shape": fitted.model.shape.to_dict()},
        "Window": window,
        "Training": {**train, "BestEpoch": prov.get("best_epoch"),
                     "StoppedEarly": prov.get("stopped_early"), "Device": prov.get("device"),
                     "Alpha": prov.get("alpha"),
                     "AlphaRange": [prov["alpha_min"], prov["alpha_max"]]
                     if "alpha_min" in prov else None},
        "Data": data,
        "CrossValidation": cv,
        "Config": config,
        "Software": software(),
        "Provenance": {**prov, "ModelFile": MODEL_FILE, "ModelSHA256": sha256(model_file),
                       "LabelsFile": LABELS_FILE},
    }


def write_model_folder(folder: Path, fitted: Any, labels: np.ndarray, affine: np.ndarray,
                       card: dict[str, Any]) -> Path:
    """Write the label image and the card (the model file must already be in ``folder``)."""
    with atomic_path(folder / LABELS_FILE) as tmp:
        nib.save(nib.Nifti1Image(np.asarray(labels, dtype=np.int16), affine), tmp)
    card = {**card, "Files": {name: sha256(folder / name) for name in (MODEL_FILE, LABELS_FILE)}}
    return write_json(folder / CARD_FILE, json_safe(card))


def json_safe(value: Any) -> Any:
    """Replace non-finite floats (e.g. the best validation loss of a run without validation data,
    which stays infinite) by ``None``: JSON has no NaN or infinity."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def read_card(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model folder's card; one-line :class:`DataError` when unusable."""
    folder = Path(folder)
    path = folder / CARD_FILE
    if not folder.is_dir():
        raise DataError("model folder not found", path=folder)
    if not (folder / MODEL_FILE).is_file():
        if (folder / LEGACY_FILE).exists():
            raise legacy_error(folder / LEGACY_FILE)
        raise DataError(f"no {MODEL_FILE} in the model folder", path=folder)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"no model card ({CARD_FILE}) in the model folder", path=folder) from None
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 or not JSON
        raise DataError(f"cannot read the model card: {exc}", path=path) from None
    if card.get("Format") != CARD_FORMAT or card.get("Direction") not in DIRECTIONS:
        raise DataError("not a bids_eeg2fmri model card (Format/Direction)", path=path)
    files = card.get("Files")
    if not isinstance(files, dict) or MODEL_FILE not in files or LABELS_FILE not in files:
        raise DataError(f"the model card lists no SHA-256 for {MODEL_FILE} and {LABELS_FILE} "
                        "(Files); retrain the model with this version", path=path)
    verify_files(folder, files)
    return card


def read_labels(folder: str | os.PathLike) -> nib.Nifti1Image:
    """The model folder's label image."""
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        raise DataError(f"no {LABELS_FILE} in the model folder", path=folder)
    try:
        return nib.load(os.fspath(path))
    except Exception as exc:  # nibabel raises several types for files that are not images
        raise DataError(f"cannot read the label image: {exc}", path=path) from None
