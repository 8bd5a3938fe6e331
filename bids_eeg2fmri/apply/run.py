"""Apply a trained model folder (``--model-dir``) to the selected participants' derivatives.

The model card (``model.json``) says the direction:

- **EEG→fMRI**: every run with a spectrogram — paired runs and EEG-only runs alike — becomes a
  synthesized BOLD series on the model's grid in MNI152NLin2009aSym,
  ``sub-XX/func/<src>_space-MNI152NLin2009aSym_res-<R>_desc-synth_bold.nii.gz`` (+ JSON). A volume
  is synthesized once the EEG of the model's whole window before it exists, so the series starts
  ``window − 1`` volumes into the EEG; ``VolumeIndices`` in the sidecar gives each synthesized
  volume's index in the measured ``desc-preproc``/``desc-model`` series of a paired run (every
  volume of the run; those its confounds flag ``non_steady_state_outlierNN`` are not synthesized),
  or in the EEG's volume markers of an EEG-only run; ``SourceVolumeIndices`` counts volumes of the
  original run. Values are in the model-ready units (z-scored per voxel); region
  models paint each region's prediction into its voxels.
- **fMRI→EEG**: every run with BOLD becomes ``sub-XX/eeg/<src>_desc-synth_spectrogram.h5``
  (:func:`~bids_eeg2fmri.training.synth.write_synth_spectrogram`). With ``--finetune`` and
  the participant's own EEG, the model is first fine-tuned on the first half of each run and
  scored on the buffered rest (the seed's protocol, :mod:`bids_eeg2fmri.training.finetune`);
  both scores go to the sidecar.

A ``--classify`` classifier folder (``models/classifier/<column>_<objective>``) predicts each
participant's group instead (:mod:`.classify`).

Channel names, frequencies, frames per TR, TR and grid are checked against the model; a mismatch
is a one-line :class:`~bids_eeg2fmri.errors.DataError` (exit 65) naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np

from .._version import __version__
from ..bids.derivatives import build_path, sidecar_path, write_sidecar
from ..bids.layout import ParticipantPlan
from ..config import Config
from ..data.raw_eeg import as_model_input
from ..data.montage import conform_to_model
from ..data.readers import non_steady_flags, read_spectrogram
from ..data.regions import RegionLabels, region_timeseries
from ..data.windows import DataSpec, RunArrays, index_samples
from ..errors import DataError, ExitCode
from ..evaluation.domains import UNITS
from ..fmri.io import write_masked_series
from ..group import card as C
from ..group.runfiles import SPACE, RunFiles, find_runs, read_json
from ..group.series import discarded_volumes, model_grid_series, repetition_time
from ..training.distributed import is_main_process
from ..training.model import FittedModel, load_model
from .classify import classify_participants, is_classifier_folder

log = logging.getLogger("bids_eeg2fmri")


def spectrogram_volumes(path: Path) -> int:
    """Volumes an EEG-only spectrogram covers: the last ``volume_indices`` entry + 1."""
    try:
        with h5py.File(path, "r") as fh:
            idx = np.asarray(fh["volume_indices"][:] if "volume_indices" in fh
                             else np.arange(fh["spectrogram"].shape[0]), dtype=int)
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read spectrogram: {exc}", path=path) from None
    if not idx.size:
        raise DataError("the spectrogram holds no volume", path=path)
    return int(idx.max()) + 1


def _bold_of(run: RunFiles) -> Path | None:
    return run.preproc_bold or next(iter(run.model_bold.values()), None)


def _check(model_spec: DataSpec, given: DataSpec, path: Path) -> None:
    try:
        model_spec.check_compatible(given)
    except DataError as exc:
        raise DataError(f"does not fit the model: {exc.message}", path=path) from None


def _check_grid(card: dict[str, Any], run: RunFiles, res: int, labels: nib.Nifti1Image) -> None:
    """A participant's model-grid series must lie on the model's grid (shape and affine)."""
    series = run.model_bold.get(res)
    if series is None or card.get("Config", {}).get("intensity_grid", "model") != "model":
        return  # a resized intensity grid has no participant-level series to compare
    img = nib.load(os.fspath(series))
    if img.shape[:3] != labels.shape[:3] or not np.allclose(img.affine, labels.affine, atol=1e-3):
        raise DataError(f"grid {img.shape[:3]} differs from the model's "
                        f"{tuple(card['Data']['Grid']['Shape'])} ({SPACE} {res} mm)", path=series)


def _provenance(model_dir: Path, card: dict[str, Any]) -> dict[str, Any]:
    return {"Name": card["Name"], "Direction": card["Direction"], "Path": os.fspath(model_dir),
            "ModelSHA256": card.get("Provenance", {}).get("ModelSHA256"),
            "TrainedOn": card.get("Data", {}).get("Subjects"),
            "Target": card.get("Data", {}).get("Target"), "Atlas": card.get("Data", {}).get("Atlas"),
            "Hyperparameters": card.get("Architecture", {}).get("Hyperparameters"),
            "CrossValidation": {k: v for k, v in card.get("CrossValidation", {}).items()
                                if k in ("Regime", "BeatsBaselines")},
            "Software": f"bids_eeg2fmri {__version__}"}


# ----------------------------------------------------------------------------- EEG → fMRI
def eeg_run_arrays(run: RunFiles, fitted: FittedModel, card: dict[str, Any]
                   ) -> tuple[RunArrays, float, str, int, bool]:
    """One run's EEG as the EEG→fMRI model ``fitted`` reads it (channels conformed, checked).

    Returns
    -------
    arrays, tr, tr_source, offset, has_bold
        The run's arrays (BOLD zeros: only the EEG is read), its repetition time and where that
        came from, the volumes discarded before the EEG's first, and whether the run has BOLD.
    """
    ms = fitted.data_spec
    bold = _bold_of(run)
    if bold is not None:
        offset, n = discarded_volumes(bold), int(nib.load(os.fspath(bold)).shape[3])
        tr, tr_source = repetition_time(bold), "BOLD sidecar"
        retained = ~non_steady_flags(n, run.confounds, sidecar_path(bold))
    else:
        offset, n = 0, spectrogram_volumes(run.spectrogram)
        retained = None
        meta = read_json(sidecar_path(run.spectrogram))
        tr = meta.get("RepetitionTime")
        if not isinstance(tr, (int, float)) or tr <= 0:
            raise DataError("EEG-only run without a positive RepetitionTime in the spectrogram "
                            "sidecar", path=sidecar_path(run.spectrogram))
        tr, tr_source = float(tr), "EEG volume markers (spectrogram sidecar)"
    eeg, valid, channels, freqs = read_spectrogram(run.spectrogram, n, offset)
    eeg, channels = conform_to_model(eeg, channels, ms.channels, card, run.spectrogram)
    given = DataSpec(channels, freqs, eeg.shape[3], tr, ms.target, ms.n_bold, mask=ms.mask,
                     affine=ms.affine, region_names=ms.region_names)
    eeg, valid, given = as_model_input(eeg, valid, given, ms, run.spectrogram)
    _check(ms, given, run.spectrogram)
    arrays = RunArrays(eeg=eeg, bold=np.zeros((n, ms.n_bold), dtype=np.float32),
                       subject=run.subject, run=run.run_label, eeg_valid=valid, retained=retained)
    return arrays, tr, tr_source, offset, bold is not None


def synthesize_bold(out_dir: Path, run: RunFiles, fitted: FittedModel, card: dict[str, Any],
                    labels: nib.Nifti1Image, model_dir: Path, config: Config) -> Path:
    """Write the synthesized BOLD of one run with a spectrogram (see the module docstring)."""
    device = config.execution.device
    if config.group.finetune:
        log.warning("%s: --finetune applies to fMRI→EEG models; EEG→fMRI model %s is applied as "
                    "trained", run.key, card["Name"])
    ms = fitted.data_spec
    res = int(str(card["Data"]["Grid"]["Resolution"]).split()[0])
    # Predictions are in the domain the model was trained in (cards before it: fluctuations).
    domain = card.get("Config", {}).get("target_domain", "fluctuations")
    arrays, tr, tr_source, offset, has_bold = eeg_run_arrays(run, fitted, card)
    _check_grid(card, run, res, labels)
    try:
        samples = index_samples([arrays], fitted.window)
    except DataError:
        raise DataError(f"the EEG covers fewer than the model's {fitted.window.span()}-volume "
                        "window", path=run.spectrogram) from None
    pred = fitted.predict([arrays], samples=samples, device=device)
    vols = samples["volume"].to_numpy()
    lab = np.asarray(labels.dataobj).astype(int)
    mask = lab > 0
    if ms.target == "voxels":
        values = pred.T
    else:
        values = pred[:, lab[mask] - 1].T
    path = build_path(out_dir, run.entities, suffix="bold", extension=".nii.gz", datatype="func",
                      space=SPACE, res=res, desc="synth")
    write_masked_series(path, values.astype(np.float32), mask, labels.affine, tr)  # atomic itself
    meta = {
        "Description": f"BOLD synthesized from the EEG spectrogram by the EEG→fMRI model "
                       f"{card['Name']} ({ms.target} targets on the {res} mm model grid)",
        "RepetitionTime": tr, "RepetitionTimeSource": tr_source,
        "TaskName": run.entities.get("task", ""),
        "SpatialReference": SPACE, "SkullStripped": True,
        "Units": UNITS[domain], "TargetDomain": domain,
        "VolumeIndices": vols.tolist(),
        "SourceVolumeIndices": (vols + offset).tolist(),
        "VolumeIndicesRefer": ("volumes of the desc-preproc/desc-model series (every volume "
                               "of the run)" if has_bold else
                               "volume markers of the EEG recording (no BOLD)"),
        "Window": {"Volumes": fitted.window.window, "Lag": fitted.window.lag,
                   "Seconds": fitted.window.window * tr},
        "Sources": [f"bids::{path_rel(run.spectrogram, out_dir)}"],
        "Model": _provenance(model_dir, card)}
    if ms.target == "regions":
        meta["Atlas"] = card["Data"].get("Atlas") or "harvard-oxford"
        meta["Regions"] = ms.region_names
    write_sidecar(path, meta)
    return path


def path_rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (for BIDS URIs)."""
    return Path(os.path.relpath(path, root)).as_posix()


# ----------------------------------------------------------------------------- fMRI → EEG
def synthesize_spectrogram(out_dir: Path, run: RunFiles, fitted: FittedModel,
                           card: dict[str, Any], labels: nib.Nifti1Image, model_dir: Path,
                           config: Config) -> Path:
    """Write the synthesized spectrogram of one run with BOLD (see the module docstring)."""
    from ..training.synth import write_synth_spectrogram

    device, finetune = config.execution.device, config.group.finetune
    ms = fitted.data_spec
    res = int(str(card["Data"]["Grid"]["Resolution"]).split()[0])
    series = model_grid_series(run, res, Path(config.execution.work_dir) / "apply")
    img = nib.load(os.fspath(series))
    if img.shape[:3] != labels.shape[:3] or not np.allclose(img.affine, labels.affine, atol=1e-3):
        raise DataError(f"grid {img.shape[:3]} differs from the model's {labels.shape[:3]} "
                        f"({SPACE} {res} mm)", path=series)
    lab = np.asarray(labels.dataobj).astype(np.int32)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if fitted.input_pca is not None:
        # Voxel-component model: its label image is the mask whose voxels (C order) the
        # components weight.
        voxels = data[lab > 0].T
        if voxels.shape[1] != fitted.input_pca.components.shape[1]:
            raise DataError(f"the model's mask has {voxels.shape[1]} voxels, its components "
                            f"{fitted.input_pca.components.shape[1]}", path=model_dir)
        regions = fitted.input_pca.transform(voxels)
    else:
        regions = region_timeseries(data, RegionLabels(lab, list(ms.region_names)))
    n, tr = regions.shape[0], repetition_time(series)
    if run.spectrogram is not None:
        eeg, valid, channels, freqs = read_spectrogram(run.spectrogram, n, discarded_volumes(series))
        eeg, channels = conform_to_model(eeg, channels, ms.channels, card, run.spectrogram)
        eeg, valid, given = as_model_input(
            eeg, valid, DataSpec(channels, freqs, eeg.shape[3], tr, "regions", ms.n_bold,
                                 region_names=ms.region_names), ms, run.spectrogram)
        _check(ms, given, run.spectrogram)
    else:
        eeg = np.zeros((n, len(ms.channels), len(ms.frequencies), ms.n_frames), dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        _check(ms, dataclasses.replace(ms, tr=tr), series)
    arrays = RunArrays(eeg=eeg, bold=regions, subject=run.subject, run=run.run_label,
                       eeg_valid=valid, retained=~non_steady_flags(n, run.confounds,
                                                                   sidecar_path(series)))
    model, tuning = fitted, None
    if finetune and run.spectrogram is not None:
        model, tuning = _finetune(fitted, arrays, config)
    elif finetune:
        log.warning("%s: --finetune needs the participant's own EEG; applying the base model",
                    run.key)
    path = write_synth_spectrogram(out_dir, run.entities, model, arrays, n_frames=ms.n_frames,
                                   device=device, spectrogram=_segments(fitted, arrays, run, config))
    meta = read_json(sidecar_path(path))
    meta["Model"] = {**meta.get("Model", {}), **_provenance(model_dir, card)}
    source = run.preproc_bold or series
    meta["Sources"] = [f"bids::{path_rel(source, out_dir)}" if source.is_relative_to(out_dir)
                       else os.fspath(source)]
    if tuning is not None:
        meta["FineTuning"] = tuning
    write_sidecar(path, meta)
    return path


def _segments(base: FittedModel, arrays: RunArrays, run: RunFiles,
              config: Config) -> np.ndarray | None:
    """``--reconstruct segments``: the run reconstructed by one model per temporal segment (None:
    sliding windows of the one model, also for a run without EEG to fine-tune on)."""
    if config.group.reconstruct != "segments":
        return None
    if run.spectrogram is None:
        log.warning("%s: --reconstruct segments fine-tunes on the participant's own EEG; "
                    "reconstructing with sliding windows", run.key)
        return None
    from ..training.finetune import finetune_settings
    from ..training.options import TrainConfig
    from ..training.segments import reconstruct_segments

    cfg = finetune_settings(TrainConfig.from_config(config), base.name, base.direction)
    return reconstruct_segments(base, arrays, cfg, config.group.segments,
                                device=config.execution.device)


def _finetune(base: FittedModel, run: RunArrays, config: Config
              ) -> tuple[FittedModel, dict[str, Any]]:
    """Fine-tune on the run's first half, score base and tuned on the buffered rest."""
    from ..training.finetune import finetune_settings, finetune_subject
    from ..training.options import TrainConfig

    cfg = finetune_settings(TrainConfig.from_config(config), base.name, base.direction)
    samples = index_samples([run], base.window)
    tuned, ft_rows, te_rows, evaluations = finetune_subject(
        base, [run], samples, np.arange(len(samples)), cfg, device=config.execution.device)
    scores = {stage: {k: float(v) for k, v in ev.metrics.items()
                      if k in ("mse", "r_overall", "r_pooled_db", "r_bins")
                      or k.startswith("r_alpha")}
              for stage, ev in zip(("Base", "FineTuned"), evaluations.values())}
    return tuned, {"Protocol": "first half of each run fine-tunes (all weights, a third of the "
                               "learning rate and epochs); scored on the rest after a buffer of "
                               "window + HRF reach",
                   "FineTuneSamples": int(len(ft_rows)), "TestSamples": int(len(te_rows)),
                   "Epochs": cfg.epochs, **scores}


#: Per direction: which runs a model applies to, and the writer of its synthesized output.
APPLIERS = {"eeg2fmri": (lambda run: run.spectrogram is not None, synthesize_bold),
            "fmri2eeg": (lambda run: _bold_of(run) is not None, synthesize_spectrogram)}


# ----------------------------------------------------------------------------- entry point
def apply_models(config: Config, plans: list[ParticipantPlan]) -> ExitCode:
    """Apply ``config.execution.model_dir`` to the derivatives of the participants in ``plans``.

    Returns
    -------
    ExitCode
        ``OK``; bad model folders and data that do not fit the model raise
        :class:`~bids_eeg2fmri.errors.DataError` (exit 65).
    """
    ex = config.execution
    out = Path(ex.output_dir)
    model_dir = Path(ex.model_dir)
    if is_classifier_folder(model_dir):  # a --classify head: predicted groups, not synthesis
        for path in classify_participants(out, [p.subject for p in plans], model_dir):
            log.info("classified: %s", path)
        return ExitCode.OK
    card = C.read_card(model_dir)
    labels = C.read_labels(model_dir)
    fitted = load_model(model_dir / C.MODEL_FILE)
    if card.get("Direction") != fitted.direction.name:
        raise DataError(f"model.json says {card.get('Direction')}, model.safetensors holds a "
                        f"{fitted.direction.name} model", path=model_dir)
    applies, synthesize = APPLIERS[fitted.direction.name]
    written = []
    for run in find_runs(out, participant_label=[p.subject for p in plans]):
        if not applies(run):
            log.info("%s: nothing to apply the %s model %s to", run.key, fitted.direction.name,
                     card["Name"])
        elif is_main_process():
            written.append(synthesize(out, run, fitted, card, labels, model_dir, config))
    for path in written:
        log.info("synthesized: %s", path)
    return ExitCode.OK
