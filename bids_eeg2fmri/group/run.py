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
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_write_text
from ..config import Config
from ..data.splits import make_folds
from ..data.windows import DataSpec, RunArrays, SequenceSpec, index_samples
from ..errors import ExitCode, UsageError, UserError
from ..models import registry
from ..training.distributed import is_main_process
from ..training.trainer import TrainConfig
from . import card as C
from .collect import GroupData, RunFiles, collect, find_runs, paired_runs

log = logging.getLogger("bids_eeg2fmri")

DEFAULT_MODELS = {"eeg2fmri": ("ridge", "mlp"), "fmri2eeg": ("ridge", "rnn-seq2seq")}
HEADLINE = {"eeg2fmri": "model_r_temporal", "fmri2eeg": "r_overall"}


@dataclass
class DirectionResult:
    """What one direction produced, for the report and the summary."""

    table: pd.DataFrame
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    fc: dict[str, Any] | None = None
    model_dirs: dict[str, Path] = field(default_factory=dict)


def model_label(name: str) -> str:
    """A BIDS label for a model name (``rnn-seq2seq`` → ``rnnseq2seq``)."""
    return re.sub(r"[^A-Za-z0-9]", "", name)


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
    need = {"loso": 2, "kfold": k, "split": 3, "blocked": 1}[regime]
    have = len(data.subjects)
    if have < need:
        raise UserError(f"--cv {regime} needs at least {need} participants with paired EEG and "
                        f"BOLD, found {have} ({', '.join('sub-' + s for s in data.subjects)})",
                        ExitCode.NO_DATA_SELECTED)


def simulation_truth(bids_dir: Path | None, files: list[RunFiles]
                     ) -> tuple[dict[str, dict[str, float]], dict[str, list[str]] | None,
                                dict[str, dict[str, Any]]]:
    """What the simulator's ground truth tells the scoring (nothing for real data).

    Returns
    -------
    ceilings
        Per run key, the noise ceiling of each driven region.
    groups
        The channel group of every simulated source (``<region>_<band>`` → channels), so that
        fMRI→EEG is also scored on the band × group cells the sources modulate; None when the
        runs disagree or there is no truth.
    truths
        Per run key, the run's ground truth (:func:`~bids_eeg2fmri.simulate.load_ground_truth`).
    """
    if bids_dir is None or not (Path(bids_dir) / "derivatives" / "simulation").is_dir():
        return {}, None, {}
    from ..simulate import load_ground_truth

    out, groups, truths = {}, [], {}
    for f in files:
        try:
            truth = load_ground_truth(bids_dir, f.subject, f.entities.get("ses"),
                                      int(f.entities.get("run", 1)),
                                      task=f.entities.get("task", "rest"))
        except (OSError, KeyError, ValueError, UserError) as exc:
            log.warning("%s: no simulator ground truth (%s)", f.key, exc)
            continue
        truths[f.key] = truth
        groups.append(truth.get("channel_groups"))
        if "noise_ceiling" not in truth:
            continue
        out[f.key] = {n: float(c) for n, c, d in zip(truth["region_names"], truth["noise_ceiling"],
                                                     truth["region_driven"]) if d and np.isfinite(c)}
    same = bool(groups) and all(g == groups[0] for g in groups) and groups[0]
    return out, ({k: list(v) for k, v in groups[0].items()} if same else None), truths


def expected_eeg(truths: dict[str, dict[str, Any]]) -> Callable[[RunFiles], np.ndarray | None]:
    """The noiseless spectrogram of a simulated run (None without truth or when it does not fit:
    the fMRI→EEG noise ceiling is then left out, the rest of the scoring is unaffected)."""
    from ..simulate.spectral_truth import expected_spectrogram

    def build(f: RunFiles) -> np.ndarray | None:
        if f.key not in truths or f.spectrogram is None:
            return None
        try:
            return expected_spectrogram(f.spectrogram, truths[f.key])
        except UserError as exc:
            log.warning("%s: no fMRI→EEG noise ceiling (%s)", f.key, exc.oneline())
            return None
    return build


def _train_config(config: Config) -> TrainConfig:
    gr, ex = config.group, config.execution
    return TrainConfig(epochs=gr.epochs, batch_size=gr.batch_size, weight_decay=gr.weight_decay,
                       device=ex.device, seed=ex.random_seed, progress=False)


def _curves(work: Path, name: str, direction: str, folds: list[str]) -> pd.DataFrame | None:
    frames = []
    for fold in folds:
        path = work / name / fold / "losses.tsv"
        if path.is_file():
            frames.append(pd.read_csv(path, sep="\t", na_values=["n/a"]).assign(fold=fold))
    return pd.concat(frames, ignore_index=True) if frames else None


def _fold_subjects(samples: pd.DataFrame, rows: np.ndarray) -> str:
    return ",".join(dict.fromkeys(samples["subject"].to_numpy()[np.asarray(rows, dtype=int)]))


# ----------------------------------------------------------------------------- EEG → fMRI
def _eeg2fmri(config: Config, data: GroupData, models: list[str], work: Path,
              ceilings: dict[str, dict[str, float]]) -> tuple[DirectionResult, dict]:
    from ..training.api import default_window, fit
    from ..training.crossval import cross_validate

    gr = config.group
    cfg = _train_config(config)
    window = default_window(data.spec, models, window_s=gr.window,
                            fd_threshold=gr.fd_threshold or None)
    cv = cross_validate(data.runs, data.spec, models, regime=gr.cv, k=gr.cv_folds, window=window,
                        train_config=cfg, out_dir=work / "cv", resume=gr.resume,
                        seed=config.execution.random_seed)
    names = data.region_names or []
    rows = []
    for rec, (name, fold) in zip(cv.table.to_dict("records"),
                                 [(m, f.name) for m in models for f in cv.folds]):
        ev = cv.evaluations[(name, fold)]
        subjects = list(dict.fromkeys(ev.samples["subject"]))
        row = {"direction": "eeg2fmri", "model": name, "fold": fold,
               "test_subject": ",".join(subjects), "n_train": rec["n_train"], "n_test": rec["n_test"],
               "mse": rec["model_mse"], "r": rec["model_r_temporal"],
               "baseline_mean_mse": rec["train_mean_mse"],
               "baseline_subject_mse": rec["subject_mean_mse"]}
        for key in ("rmse", "r_spatial", "psnr", "ssim", "fc_similarity"):
            if f"model_{key}" in rec:
                row[key] = rec[f"model_{key}"]
        keys = [f.key for f in data.files if f.subject in subjects]
        driven = sorted({n for k in keys for n in ceilings.get(k, {})} & set(names))
        if driven:
            row["r_driven"] = float(np.nanmean([rec.get(f"model_r_region_{names.index(n) + 1}",
                                                        np.nan) for n in driven]))
            row["noise_ceiling"] = float(np.nanmean([ceilings[k][n] for k in keys
                                                     for n in driven if n in ceilings.get(k, {})]))
        row.update({k: v for k, v in rec.items() if k.startswith("model_r_region_")})
        rows.append(row)
    table = pd.DataFrame(rows)
    res = DirectionResult(table)
    folds = [f.name for f in cv.folds]
    for name in models:
        curve = _curves(work / "cv", name, "eeg2fmri", folds)
        if curve is not None:
            res.curves[f"{name} (eeg2fmri)"] = curve
    if data.spec.target == "regions":
        true = np.concatenate([cv.evaluations[(models[0], f)].true for f in folds])
        res.fc = {"measured": np.nan_to_num(np.corrcoef(true.T)), "labels": names,
                  "predicted": {m: np.nan_to_num(np.corrcoef(np.concatenate(
                      [cv.evaluations[(m, f)].pred for f in folds]).T)) for m in models}}
    finals = {}
    for name in models:
        fitted = fit(data.runs, data.spec, name, window=window, train_config=cfg,
                     out_dir=work / "final" / name, resume=gr.resume)
        finals[name] = (fitted, int(len(index_samples(data.runs, window))),
                        {**asdict(window), "window_seconds": window.window * data.spec.tr})
    return res, finals


# ----------------------------------------------------------------------------- fMRI → EEG
def _fmri_inputs(config: Config, data: GroupData, samples: pd.DataFrame, rows: np.ndarray,
                 window: SequenceSpec) -> tuple[list[RunArrays], DataSpec, Any]:
    """The runs as the models read them: atlas regions as collected, or voxel components fitted
    on the training rows' volumes only (``--fmri-input pca``)."""
    if data.fmri_input != "pca":
        return data.runs, data.spec, None
    from ..data.regions import pca_spec, project_runs
    from ..training.fmri2eeg import fit_input_pca

    pca = fit_input_pca(data.runs, samples, rows, window, config.group.pca_components)
    return project_runs(data.runs, pca), pca_spec(data.spec, pca), pca


def _fmri2eeg(config: Config, data: GroupData, models: list[str], work: Path,
              groups: dict[str, list[str]] | None) -> tuple[DirectionResult, dict]:
    from ..training import fmri2eeg as F

    gr, seed = config.group, config.execution.random_seed
    cfg = _train_config(config)
    window = SequenceSpec(window=gr.window_trs, horizon=gr.horizon_trs,
                          fd_threshold=gr.fd_threshold or None)
    samples = index_samples(data.runs, window)
    folds = make_folds(samples, gr.cv, spec=window, tr=data.spec.tr, k=gr.cv_folds, seed=seed)
    rows = []
    inputs = {f.name: _fmri_inputs(config, data, samples, np.concatenate([f.train, f.val]),
                                   window) for f in folds}
    for name in models:
        for fold in folds:
            runs, spec, pca = inputs[fold.name]
            fitted = F.fit(runs, spec, name, window=window, samples=samples,
                           rows=fold.train, val_rows=fold.val if len(fold.val) else None,
                           train_config=cfg, out_dir=work / "cv" / name / fold.name,
                           resume=gr.resume)
            fitted.input_pca = pca
            ev = F.evaluate(fitted, runs, samples=samples, rows=fold.test,
                            groups={"all": list(data.spec.channels), **(groups or {})},
                            device=config.execution.device)
            # Targets are z-scored per subject: the training mean predicts 0; the subject-mean
            # oracle predicts each test subject's own mean over the evaluated samples.
            subj = ev.samples["subject"].to_numpy()
            own = np.empty_like(ev.true)
            for s in np.unique(subj):
                own[subj == s] = ev.true[subj == s].mean(axis=0)
            row = {"direction": "fmri2eeg", "model": name, "fold": fold.name,
                   "test_subject": _fold_subjects(samples, fold.test),
                   "n_train": len(fold.train), "n_test": len(fold.test),
                   "mse": ev.metrics["mse"], "r": ev.metrics["r_overall"],
                   "baseline_mean_mse": float(np.mean(ev.true ** 2)),
                   "baseline_subject_mse": float(np.mean((ev.true - own) ** 2))}
            # Simulated sources are named <region>_<band>: their driven cell is <band>_<group>.
            driven = [f"r_{g.rsplit('_', 1)[-1]}_{g}" for g in (groups or {})]
            driven = [c for c in driven if c in ev.metrics]
            if driven:
                row["r_driven"] = float(np.nanmean([ev.metrics[c] for c in driven]))
                ceil = [ev.metrics.get(f"ceiling_{c[2:]}", np.nan) for c in driven]
                if np.isfinite(ceil).any():
                    row["noise_ceiling"] = float(np.nanmean(ceil))
            row.update({k: v for k, v in ev.metrics.items() if k not in ("mse", "r_overall")})
            rows.append(row)
    res = DirectionResult(pd.DataFrame(rows))
    for name in models:
        curve = _curves(work / "cv", name, "fmri2eeg", [f.name for f in folds])
        if curve is not None:
            res.curves[f"{name} (fmri2eeg)"] = curve
    finals = {}
    runs, spec, pca = _fmri_inputs(config, data, samples, np.arange(len(samples)), window)
    for name in models:
        fitted = F.fit(runs, spec, name, window=window, samples=samples,
                       train_config=cfg, out_dir=work / "final" / name, resume=gr.resume)
        fitted.input_pca = pca
        finals[name] = (fitted, int(len(samples)),
                        {**asdict(window), "offset": window.offset,
                         "window_seconds": window.window * data.spec.tr})
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
        window=SequenceSpec(window=gr.window_trs, horizon=gr.horizon_trs,
                            fd_threshold=gr.fd_threshold or None),
        regime=regime, k=min(gr.cv_folds, len(data.subjects)), train_config=_train_config(config),
        groups={"all": list(data.spec.channels), **(groups or {})}, test=gr.single_region_test,
        workers=workers, seed=ex.random_seed)
    return result.table


# ----------------------------------------------------------------------------- outputs
def _cv_summary(table: pd.DataFrame, regime: str) -> dict[str, Any]:
    numeric = [c for c in table.columns if c not in ("direction", "model", "fold", "test_subject")
               and not c.startswith("model_r_region_") and pd.api.types.is_numeric_dtype(table[c])]
    summary = {}
    for c in numeric:
        v = table[c].to_numpy(float)
        v = v[np.isfinite(v)]
        summary[c] = {"Mean": float(v.mean()) if v.size else None,
                      "SEM": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None}
    return {"Regime": regime, "Folds": table["fold"].astype(str).tolist(),
            "TestSubjects": table["test_subject"].tolist(), "Metrics": summary,
            "BeatsBaselines": bool(summary["mse"]["Mean"] is not None and all(
                summary["mse"]["Mean"] < summary[b]["Mean"]
                for b in ("baseline_mean_mse", "baseline_subject_mse")
                if summary.get(b, {}).get("Mean") is not None))}


def _write_outputs(config: Config, direction: str, data: GroupData, res: DirectionResult,
                   finals: dict, out: Path) -> None:
    gr = config.group
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
            train=asdict(_train_config(config)), cv=_cv_summary(table, gr.cv),
            config={k: v for k, v in config.to_dict()["group"].items()},
            model_file=folder / C.MODEL_FILE, entry=entry,
            dataset=C.dataset_identity(config.execution.bids_dir))
        C.write_model_folder(folder, fitted, labels, data.affine, card)
        res.model_dirs[name] = folder


def _participant_options(out: Path) -> dict[str, dict[str, Any]]:
    """``[fmri]``/``[eeg]`` of the participant level's saved configuration (for CITATION.md)."""
    path = out / "logs" / "config.toml"
    try:
        with open(path, "rb") as fh:
            saved = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    if saved.get("execution", {}).get("analysis_level") != "participant":
        return {}
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


def print_summary(table: pd.DataFrame) -> str:
    """One line per direction and model: r (all targets, and the simulator's driven ones when
    known), the noise ceiling, MSE and the baselines' MSE (means over folds)."""
    lines = [f"{'direction':<9} {'model':<14} {'r':>7} {'r_driven':>8} {'ceiling':>7} {'MSE':>8} "
             f"{'train-mean':>10} {'subj-mean':>9}"]
    for (direction, model), g in table.groupby(["direction", "model"], sort=False):
        ceil = g["noise_ceiling"].mean() if "noise_ceiling" in g else float("nan")
        # On simulated data r over the driven regions/cells is what the ceiling applies to.
        driven = g["r_driven"].mean() if "r_driven" in g else float("nan")
        lines.append(f"{direction:<9} {model:<14} {g['r'].mean():>7.3f} {driven:>8.3f} {ceil:>7.3f} "
                     f"{g['mse'].mean():>8.4f} {g['baseline_mean_mse'].mean():>10.4f} "
                     f"{g['baseline_subject_mse'].mean():>9.4f}")
    return "\n".join(lines)


def run_group_level(config: Config, save: Callable[[], Any] | None = None) -> ExitCode:
    """Run the group level (module docstring) and return its exit code.

    Parameters
    ----------
    config
        The resolved configuration.
    save
        Writes this run's ``logs/config.toml``; called after the participant level's saved
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
    ceilings, groups, truths = simulation_truth(ex.bids_dir, paired_runs(files))
    warnings = [f"{f.key}: EEG only — not used for training (apply a model to it with "
                "--model-dir)" for f in files if not f.paired and f.spectrogram is not None]
    # Every input is checked before anything is trained or written.
    datasets = {}
    for direction in directions:
        datasets[direction] = collect(files, direction, res=config.fmri.model_res,
                                      target=gr.target, atlas=gr.atlas, regions=gr.regions,
                                      cache_dir=work / "data",
                                      expected_eeg=expected_eeg(truths) if direction == "fmri2eeg"
                                      and truths else None, fmri_input=gr.fmri_input,
                                      eeg_channels=gr.eeg_channels)
        check_subjects(datasets[direction], gr.cv, gr.cv_folds)
    sr_regions = check_single_region(config, datasets["fmri2eeg"]) if gr.single_region else []
    if gr.eeg_features == "bands" and "eeg2fmri" in datasets:
        from ..data.bandpool import pool_runs

        data = datasets["eeg2fmri"]
        bands = participant.get("eeg", {}).get("bands") or config.eeg.bands
        data.runs, data.spec = pool_runs(data.runs, data.spec, bands)
    if save is not None and is_main_process():
        save()
    tables, curves, fc, single_region = [], {}, None, None
    n_subjects = max(len(d.subjects) for d in datasets.values())
    for direction, data in datasets.items():
        log.info("group level %s: %d participant(s), %d run(s), models %s, --cv %s", direction,
                 len(data.subjects), len(data.runs), ", ".join(models[direction]), gr.cv)
        if direction == "eeg2fmri":
            res, finals = _eeg2fmri(config, data, models[direction], work / direction, ceilings)
            fc = res.fc
        else:
            res, finals = _fmri2eeg(config, data, models[direction], work / direction, groups)
            if gr.single_region:
                single_region = _single_region(config, data, sr_regions, groups)
                if is_main_process():
                    atomic_write_text(single_region_path(out), single_region.to_csv(
                        sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
        if is_main_process():
            _write_outputs(config, direction, data, res, finals, out)
        tables.append(res.table)
        curves.update(res.curves)
    table = pd.concat(tables, ignore_index=True)
    if is_main_process():
        from ..reports.html import write_group_report

        notes = [f"{n_subjects} participant(s) with paired EEG and BOLD; --cv {gr.cv}; "
                 f"model grid {config.fmri.model_res} mm; EEG→fMRI targets: {gr.target}"
                 + (f" ({gr.atlas})" if gr.target == "regions" else ""),
                 "r: EEG→fMRI mean temporal Pearson r over targets; fMRI→EEG r over every TR × "
                 "channel × frequency. r_driven (simulated data): mean r over the regions "
                 "(EEG→fMRI) or band × channel-group cells (fMRI→EEG) the simulator's sources "
                 "drive; noise_ceiling: r of those targets' measurement with the noiseless signal."]
        report = write_group_report(out, table, curves, single_region, fc, notes=notes,
                                    warnings=warnings)
        _citation(config, out, participant, sorted({m for d in directions for m in models[d]}),
                  n_subjects, bool(ceilings), files)
        print(print_summary(table), flush=True)
        print(f"group report: {report}", flush=True)
    return ExitCode.OK
