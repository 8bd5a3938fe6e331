"""``bids-eeg2fmri BIDS OUT group``: cross-validate the models, train final ones, report.

For each direction of ``--direction``:

1. collect the paired runs (:mod:`.collect`);
2. cross-validate every model of ``--models`` under ``--cv`` (checkpoints and losses in the work
   dir, so ``--resume`` continues an interrupted run);
3. write ``group/direction-<d>_model-<label>_desc-cv_metrics.tsv`` (one row per fold, the two
   baselines and, for simulated data, the noise ceiling next to the model);
4. train the final model on every paired participant and write ``models/<d>/<name>/`` (weights,
   model card, label image) for ``--model-dir``.

Then ``group.html`` and ``logs/CITATION.md``. Every write to ``OUT`` happens on the main process
only (:func:`~bids_eeg2fmri.training.distributed.is_main_process`), so a ``torchrun`` launch with
several processes writes each file once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_write_text
from ..bids.derivatives import entity_label as model_label  # the model entity of file names
from ..config import Config
from ..errors import ExitCode, UsageError, UserError
from ..evaluation.crossdomain import add_other_domain
from ..evaluation.group import (banner, card_evaluation, evaluation_note, evaluation_options,
                                label_leaky, regimes, report_tables)
from ..evaluation.participant_check import participant_warnings, read_sidecars
from ..evaluation.protocols import size_hparams
from ..models import registry
from ..runlogs import latest_config
from ..training.core import cross_validate, fit
from ..training.direction import Direction, get_direction
from ..training.distributed import is_main_process
from ..training.options import TrainConfig
from . import card as C
from . import finetune as FT
from .calhas import calhas_outputs, check_calhas
from .collect import GroupData, collect_directions, paired_runs
from .runfiles import RunFiles, find_runs
from .features import apply_eeg_features, direction_config
from .results import (DirectionResult, cv_summary, fc_matrices, fold_table, loss_curves,
                      print_summary, score_options)
from .truth import Truth, expected_eeg, simulation_truth

log = logging.getLogger("bids_eeg2fmri")

DEFAULT_MODELS = {"eeg2fmri": ("ridge", "mlp"), "fmri2eeg": ("ridge", "rnn-seq2seq")}
__all__ = ["print_summary", "run_group_level"]


def metrics_path(out_dir: Path, direction: str, name: str) -> Path:
    """``OUT/group/direction-<d>_model-<label>_desc-cv_metrics.tsv``."""
    return out_dir / "group" / f"direction-{direction}_model-{model_label(name)}_desc-cv_metrics.tsv"


def resolve_models(requested: list[str], directions: list[str]) -> dict[str, list[str]]:
    """Models per direction: the defaults, or the requested names registered for that direction.

    Raises
    ------
    UsageError
        For a name registered in no requested direction, or a direction left without a model.
    """
    if not requested:
        return {d: list(DEFAULT_MODELS[d]) for d in directions}
    out = {d: [m for m in requested if m in registry.available(d)] for d in directions}
    unknown = [m for m in requested if not any(m in out[d] for d in directions)]
    if unknown:
        raise UsageError(f"unknown model(s) {', '.join(unknown)}; "
                         + "; ".join(f"{d}: {', '.join(registry.available(d))}" for d in directions))
    empty = [d for d in directions if not out[d]]
    if empty:
        raise UsageError(f"--models names no model for {', '.join(empty)}; add one of "
                         + "; ".join(f"{d}: {', '.join(registry.available(d))}" for d in empty))
    return out


def check_subjects(data: GroupData, regime: str, k: int) -> None:
    """Exit 18 when the data hold fewer subjects than the CV regime needs."""
    need = {"loso": 2, "kfold": k, "split": 3, "blocked": 1, "shuffled": 1}[regime]
    have = len(data.subjects)
    if have < need:
        raise UserError(f"--cv {regime} needs at least {need} participants with paired EEG and "
                        f"BOLD, found {have} ({', '.join('sub-' + s for s in data.subjects)})",
                        ExitCode.NO_DATA_SELECTED)


def _fold_inputs(config: Config, data: GroupData, window: Any) -> Callable | None:
    """fMRI→EEG with ``--fmri-input pca``: voxel components fitted on each fold's training rows
    (the volumes their BOLD windows read) only; None for inputs used as collected."""
    if data.fmri_input != "pca":
        return None
    from ..data.regions import pca_spec, project_runs
    from ..training.synth import fit_input_pca

    def inputs(samples: pd.DataFrame, rows: np.ndarray) -> tuple:
        pca = fit_input_pca(data.runs, samples, rows, window, config.group.pca_components)
        return project_runs(data.runs, pca), pca_spec(data.spec, pca), pca
    return inputs


def _train_direction(config: Config, d: Direction, data: GroupData, models: list[str],
                     work: Path, truth: Truth) -> tuple[DirectionResult, dict]:
    """Cross-validate ``models`` of direction ``d``, then fit each on every paired run."""
    gr, ex = config.group, config.execution
    cfg = TrainConfig.from_config(config)
    window = d.window_from(gr, data.spec, models)
    inputs = _fold_inputs(config, data, window)
    hparams = size_hparams(gr.model_size, models,
                           {m: registry.entry(m, d.name).defaults for m in models})
    tables = []
    scoring = evaluation_options(config, d.name, data)
    # A leaky regime (--allow-leaky-split) runs after, and is shown beside, the leak-free one.
    for split, regime in regimes(config, len(data.subjects)):
        cv_dir = work / ("cv" if split == "leak-free" else f"cv-{split}")
        run_cv = cross_validate(
            data.runs, data.spec, models, direction=d, regime=regime, k=gr.cv_folds,
            window=window, train_config=cfg, hparams=hparams, fold_inputs=inputs, out_dir=cv_dir,
            resume=gr.resume, seed=ex.random_seed, device=ex.device, allow_leaky=True,
            **score_options(d, data, truth), **scoring)
        # EEG→fMRI: the other metric domain's scores beside the trained domain's.
        tables.append(add_other_domain(fold_table(d, run_cv, data, truth), run_cv, data,
                                       **scoring).assign(split=split, regime=regime))
        if split == "leak-free":
            cv = run_cv
    res = DirectionResult(pd.concat(tables, ignore_index=True),
                          loss_curves(work / "cv", d, models, [f.name for f in cv.folds]))
    if d.name == "eeg2fmri" and data.spec.target == "regions":
        res.fc = fc_matrices(cv, data, models)
    samples = cv.samples
    runs, spec, pca = (inputs(samples, np.arange(len(samples))) if inputs is not None
                       else (data.runs, data.spec, None))
    finals = {}
    for name in models:
        fitted = fit(runs, spec, name, direction=d, window=window, samples=samples,
                     hparams=hparams.get(name), train_config=cfg, out_dir=work / "final" / name,
                     resume=gr.resume)
        fitted.input_pca = pca
        finals[name] = (fitted, int(len(samples)), window.describe(data.spec.tr))
    return res, finals


# ----------------------------------------------------------------------------- single region
def single_region_path(out_dir: Path) -> Path:
    """``OUT/group/direction-fmri2eeg_desc-singleregion_stats.tsv``."""
    return out_dir / "group" / "direction-fmri2eeg_desc-singleregion_stats.tsv"


def check_single_region(config: Config, data: GroupData) -> list[str]:
    """The regions the single-region analysis tests; exit 64 for unknown names or model."""
    from ..data.regions import NON_GM

    gr = config.group
    if gr.single_region_model not in registry.available("fmri2eeg"):
        raise UsageError(f"--single-region-model {gr.single_region_model!r} is no fMRI→EEG "
                         f"model; choose from {', '.join(registry.available('fmri2eeg'))}")
    names = [n for n in (data.region_names or []) if n != NON_GM]
    unknown = [r for r in gr.single_region_regions if r not in names]
    if unknown:
        raise UsageError(f"--single-region-regions: unknown region(s) {', '.join(unknown)}; "
                         f"the fMRI→EEG input has e.g. {', '.join(names[:5])}")
    return list(gr.single_region_regions) or names


def _single_region(config: Config, data: GroupData, regions: list[str],
                   groups: dict[str, list[str]] | None) -> pd.DataFrame:
    from ..analysis.single_region import single_region_analysis
    from ..data.regions import NON_GM

    gr, ex = config.group, config.execution
    # Every subject must be held out once to give one paired score per subject.
    regime = gr.cv if gr.cv in ("loso", "kfold") else "loso"
    workers = max(1, min(ex.nprocs or os.cpu_count() or 1, len(regions) + 1))
    log.info("single-region analysis: %d region(s) × %s, %s CV, %s test, %d worker(s)",
             len(regions), gr.single_region_model, regime, gr.single_region_test, workers)
    result = single_region_analysis(
        data.runs, data.spec, non_gm=NON_GM, regions=regions, model=gr.single_region_model,
        window=get_direction("fmri2eeg").window_from(gr, data.spec, [gr.single_region_model]),
        regime=regime, k=min(gr.cv_folds, len(data.subjects)),
        train_config=TrainConfig.from_config(config),
        groups={"all": list(data.spec.channels), **(groups or {})}, test=gr.single_region_test,
        workers=workers, seed=ex.random_seed)
    return result.table


# ----------------------------------------------------------------------------- outputs
def _write_outputs(config: Config, direction: str, data: GroupData, res: DirectionResult,
                   finals: dict, out: Path) -> None:
    # The direction's evaluation tables and leak-free regime are the same for every model's card.
    evaluation = card_evaluation(res.table, config, len(data.subjects), direction)
    leak_free = regimes(config, len(data.subjects))[0][1]
    for name, (fitted, n_samples, window) in finals.items():
        table = res.table[res.table["model"] == name]
        atomic_write_text(metrics_path(out, direction, name),
                          table.to_csv(sep="\t", index=False, na_rep="n/a"))
        folder = out / "models" / direction / name
        fitted.provenance.pop("created", None)  # date-free: a repeated run repeats the files
        fitted.save(folder / C.MODEL_FILE)
        entry = registry.entry(name, direction)
        labels = data.labels if data.labels is not None else data.spec.mask.astype(np.int16)
        card = C.model_card(
            name=name, direction=direction, fitted=fitted,
            data={**data.describe(), "NumberOfSamples": n_samples}, window=window,
            train=asdict(TrainConfig.from_config(config)),
            cv=cv_summary(table[table["split"] == "leak-free"], leak_free),
            config={k: v for k, v in config.to_dict()["group"].items()},
            model_file=folder / C.MODEL_FILE, entry=entry,
            dataset=C.dataset_identity(config.execution.bids_dir))
        card["Evaluation"].update(evaluation)
        C.write_model_folder(folder, fitted, labels, data.affine, card)
        res.model_dirs[name] = folder


def _participant_options(out: Path) -> dict[str, dict[str, Any]]:
    """``[fmri]``/``[eeg]`` of the participant level's saved configuration (for CITATION.md)."""
    saved = latest_config(out, "participant")
    return {k: saved[k] for k in ("fmri", "eeg") if isinstance(saved.get(k), dict)}


def _citation(config: Config, out: Path, participant: dict, models: list[str], n_subjects: int,
              simulated: bool, files: list[RunFiles]) -> None:
    from ..reports.methods import stages_from_config, update_citation

    d = config.to_dict()
    ran = ["models"]
    has_fmri = any(f.preproc_bold is not None for f in files)
    if participant:
        d = {**d, **participant}
        ran = (["fmri"] if has_fmri else []) + ["eeg"] + ran
    extra = {"models": {"models": models, "n_subjects": n_subjects, "simulated": simulated}}
    update_citation(out, stages_from_config(d, ran=ran, extra=extra))


def run_group_level(config: Config, save: Callable[[], Any] | None = None) -> ExitCode:
    """Run the group level (module docstring) and return its exit code.

    Parameters
    ----------
    config
        The resolved configuration.
    save
        Writes this run's ``logs/config-<time>-<pid>.toml``; called after the participant level's saved
        options have been read.

    Raises
    ------
    UserError
        66 without participant outputs, 65 for inconsistent derivatives, 18 for too few
        participants, 64 for unknown models or regions.
    """
    ex, gr = config.execution, config.group
    out = Path(ex.output_dir)
    participant = _participant_options(out)
    files = find_runs(out, participant_label=ex.participant_label)
    work = Path(ex.work_dir) / "group"
    directions = ["eeg2fmri", "fmri2eeg"] if gr.direction == "both" else [gr.direction]
    models = resolve_models(gr.models, directions)
    compare_finetuning = FT.wanted(config)  # usage errors before anything is read or trained
    ceilings, groups, truths = simulation_truth(ex.bids_dir, paired_runs(files))
    truth = Truth(ceilings, groups)
    warnings = [f"{f.key}: EEG only — not used for training (apply a model to it with "
                "--model-dir)" for f in files if not f.paired and f.spectrogram is not None]
    warnings += participant_warnings(gr.protocol, read_sidecars(
        (f.key, f.spectrogram) for f in files if f.paired))  # --protocol's participant part
    # Every input is checked before anything is trained or written.
    datasets = collect_directions(files, directions, res=config.fmri.model_res, target=gr.target,
                                  atlas=gr.atlas, regions=gr.regions, cache_dir=work / "data",
                                  expected_eeg=expected_eeg(truths) if truths else None,
                                  fmri_input=gr.fmri_input, eeg_channels=gr.eeg_channels,
                                  target_domain=gr.target_domain,
                                  intensity_grid=gr.intensity_grid)
    for data in datasets.values():
        check_subjects(data, gr.cv, gr.cv_folds)
    sr_regions = check_single_region(config, datasets["fmri2eeg"]) if gr.single_region else []
    check_calhas(config, datasets)
    apply_eeg_features(config, datasets, participant)
    if save is not None and is_main_process():
        save()
    tables, curves, fc, single_region, sections, extra = [], {}, None, None, [], []
    n_subjects = max(len(d.subjects) for d in datasets.values())
    for direction, data in datasets.items():
        log.info("group level %s: %d participant(s), %d run(s), models %s, --cv %s", direction,
                 len(data.subjects), len(data.runs), ", ".join(models[direction]), gr.cv)
        res, finals = _train_direction(direction_config(config, direction),
                                       get_direction(direction), data, models[direction],
                                       work / direction, truth)
        fc = res.fc or fc
        if direction == "fmri2eeg":
            if gr.single_region:
                single_region = _single_region(config, data, sr_regions, groups)
                if is_main_process():
                    atomic_write_text(single_region_path(out), single_region.to_csv(
                        sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
        if direction == "eeg2fmri":  # classification, attribution, attention (Calhas)
            sections += calhas_outputs(config, data, finals, models[direction], out,
                                       participant.get("eeg", {}).get("bands") or config.eeg.bands,
                                       write=is_main_process(), cv_table=res.table)
        if direction == "fmri2eeg" and compare_finetuning:
            d = get_direction(direction)
            ft = FT.finetune_comparison(config, data.runs, data.spec, models[direction],
                                        d.window_from(gr, data.spec, models[direction]),
                                        score_options(d, data, truth), FT.driven_cells(groups))
            if is_main_process():
                FT.write_finetune(out, ft)
                extra.append(("finetune", "fMRI→EEG: base vs fine-tuned and segment models",
                              FT.CAPTION, FT.side_by_side(ft)))
        if is_main_process():
            _write_outputs(config, direction, data, res, finals, out)
        tables.append(res.table)
        curves.update(res.curves)
    table = label_leaky(pd.concat(tables, ignore_index=True))
    if is_main_process():
        from ..reports.html import write_group_report

        notes = [f"{n_subjects} participant(s) with paired EEG and BOLD; --cv {gr.cv}; "
                 f"model grid {config.fmri.model_res} mm; EEG→fMRI targets: {gr.target}"
                 + (f" ({gr.atlas})" if gr.target == "regions" else ""),
                 "r: EEG→fMRI mean temporal Pearson r over targets; fMRI→EEG r over every TR × "
                 "channel × frequency. r_driven (simulated data): mean r over the regions "
                 "(EEG→fMRI) or band × channel-group cells (fMRI→EEG) the simulator's sources "
                 "drive; noise_ceiling: r of those targets' measurement with the noiseless signal."]
        notes.append(evaluation_note(config))
        report = write_group_report(out, table, curves, single_region, fc, notes=notes,
                                    warnings=warnings, extra_sections=sections,
                                    tables=report_tables(table, config),
                                    banner=banner(config, n_subjects), extra_tables=extra)
        _citation(config, out, participant, sorted({m for d in directions for m in models[d]}),
                  n_subjects, bool(ceilings), files)
        print(print_summary(table), flush=True)
        print(f"group report: {report}", flush=True)
    return ExitCode.OK
