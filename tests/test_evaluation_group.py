"""Evaluation options: presets, the leaky-split refusal and banner, training options, and every
domain's metrics and baselines through the group level."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.cli.run import main as app
from bids_eeg2fmri.config import Config
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.evaluation.comparison import PAPERS, baseline_columns, papers_table
from bids_eeg2fmri.evaluation.group import evaluation_note
from bids_eeg2fmri.evaluation.protocols import PROTOCOLS, size_hparams
from bids_eeg2fmri.group.run import metrics_path
from bids_eeg2fmri.training.core import cross_validate
from bids_eeg2fmri.training.direction import get_direction
from bids_eeg2fmri.training.options import TrainConfig

from eeg2fmri_sim import simulate
from test_group import EEG_ONLY, GROUP_ARGS, group_run  # noqa: F401  (the session fixture)


@pytest.mark.parametrize("args", [["--protocol", "bricman2021"], ["--cv", "shuffled"]])
def test_leaky_split_is_refused_without_the_flag(tmp_path, capsys, args):
    (tmp_path / "bids").mkdir()
    code = app([str(tmp_path / "bids"), str(tmp_path / "out"), "group", *args])
    assert code == 64
    err = capsys.readouterr().err
    assert "--allow-leaky-split" in err and "Traceback" not in err


def test_presets_fill_settings_the_user_left_at_default(tmp_path):
    c = Config.from_sources({"protocol": "poster"})
    assert (c.group.direction, c.group.cv, c.group.cv_folds) == ("fmri2eeg", "kfold", 5)
    c = Config.from_sources({"protocol": "poster", "cv": "loso", "window_trs": 8})
    assert (c.group.cv, c.group.window_trs, c.group.horizon_trs) == ("loso", 8, 5)
    toml = tmp_path / "c.toml"
    toml.write_text('[group]\nprotocol = "bricman2021"\nallow_leaky_split = true\nlr = 0.002\n'
                    'patience = 3\nhrf_lag = 4.0\nmodel_size = "paper"\n')
    c = Config.from_sources({}, toml)
    assert (c.group.cv, c.group.window_s, c.group.target) == ("shuffled", 30.0, "regions")
    cfg = TrainConfig.from_config(c)
    assert (cfg.lr, cfg.patience) == (0.002, 3)
    assert TrainConfig.from_config(Config()).lr is None  # each model's own rate
    runs, spec, _ = simulate(n_subjects=1, n_volumes=40, target="regions")
    window = get_direction("eeg2fmri").window_from(c.group, spec, ["ridge"])
    assert window.lag == 2 and window.window == 15  # 4 s at TR 2 s; 30 s window
    sizes = size_hparams("paper", ["mlp", "ridge"], {"mlp": {"hidden": 256, "layers": 2},
                                                     "ridge": {"alphas": []}})
    assert sizes == {"mlp": {"hidden": 1000, "layers": 3}, "ridge": {}}
    assert size_hparams("small", ["mlp"], {"mlp": {"hidden": 256}}) == {}
    # EEG→fMRI trains on intensity while fMRI→EEG keeps reading fluctuations.
    assert Config.from_sources({"target_domain": "intensity"}).group.direction == "both"
    assert set(PROTOCOLS) == {"calhas2023", "bruno2025", "bricman2021", "poster"}
    note = evaluation_note(Config.from_sources({"protocol": "bruno2025"}))
    assert "intensity (resize grid)" in note and "eeg_h_freq = 30.0" in note


def test_leaky_regime_scores_higher_than_leak_free_without_coupling():
    """EEG carries nothing about BOLD here: a shuffled split still finds "signal"."""
    runs, spec, _ = simulate(n_subjects=2, n_volumes=120, coupled=False, target="regions",
                             seed=2)
    hp = {"ridge": {"alphas": [1e-3]}}  # a near-interpolating fit, the sharpest leak probe
    r = {reg: cross_validate(runs, spec, ["ridge"], regime=reg, allow_leaky=True, hparams=hp,
                             k=5).summary().loc["ridge", "model_r_temporal"]
         for reg in ("shuffled", "blocked")}
    assert r["shuffled"] > r["blocked"] + 0.05, r
    assert abs(r["blocked"]) < 0.1, r
    with pytest.raises(UsageError, match="allow-leaky-split"):
        cross_validate(runs, spec, ["ridge"], regime="shuffled")


def test_baseline_columns_and_papers_table():
    m = {"model_r_temporal": 0.3, "train_mean_r_temporal": float("nan"),
         "subject_mean_r_temporal": 0.1, "model_rmse": 0.9, "train_mean_rmse": 1.0,
         "subject_mean_rmse": 0.95}
    cols = baseline_columns("eeg2fmri", m)
    assert cols["r_temporal_minus_best_baseline"] == pytest.approx(0.2)
    assert cols["rmse_minus_best_baseline"] == pytest.approx(-0.05)
    table = pd.DataFrame({"direction": ["eeg2fmri"] * 2, "model": ["ridge"] * 2,
                          "baseline_train_mean_ssim_volume3d": [0.95, 0.97],
                          "ssim_volume3d": [0.96, 0.98]})
    t = papers_table(table, "intensity")
    row = t[t["paper"] == "Bruno 2025"].iloc[0]
    assert row["mean_volume_here"] == pytest.approx(0.96) and row["reported"] == 0.56
    assert row["best_model_here"] == pytest.approx(0.97)
    assert t[t["paper"] == "Bruno 2025"]["mean_volume_here"].notna().any()
    # A run without the paper's domain (no intensity columns) says so.
    row = papers_table(table, "fluctuations").iloc[0]
    assert np.isnan(row["mean_volume_here"]) and "--target-domain intensity" in row["note"]
    assert len(t) == len(PAPERS)


@pytest.mark.slow
def test_group_tables_carry_every_metric_and_baseline(group_run):  # noqa: F811
    out = group_run["out"]
    f2e = pd.read_csv(metrics_path(out, "fmri2eeg", "ridge"), sep="\t", na_values="n/a")
    assert {"r_pooled_db", "r_overall", "r_bins", "baseline_train_mean_r_pooled_db",
            "r_pooled_db_minus_best_baseline"} <= set(f2e.columns)
    # The mean spectrum alone scores high on the poster's pooled dB r.
    assert f2e["baseline_train_mean_r_pooled_db"].mean() > 0.3
    e2f = pd.read_csv(metrics_path(out, "eeg2fmri", "ridge"), sep="\t", na_values="n/a")
    assert {"baseline_subject_mean_r_temporal", "r_temporal_minus_best_baseline",
            "split"} <= set(e2f.columns)
    html = (out / "group.html").read_text()
    for word in ("r_pooled_db", "r_overall", "Model minus best baseline",
                 "The papers&#39; numbers vs the mean volume here"):
        assert word in html, word
    card = json.loads((out / "models" / "eeg2fmri" / "ridge" / "model.json").read_text())
    assert card["Evaluation"]["TargetDomain"] == "fluctuations"
    assert card["Config"]["target_domain"] == "fluctuations"
    # The one default run scores both domains: TSV, report and card.
    assert set(e2f["domain"]) == {"fluctuations"}
    assert (e2f["intensity_data_range"] == 1.0).all()
    assert {"intensity_r_temporal", "intensity_baseline_subject_mean_rmse",
            "intensity_rmse_minus_best_baseline"} <= set(e2f.columns)
    assert "intensity_r_temporal" in html and "mapped" in html
    assert card["Evaluation"]["ScoredDomains"] == ["fluctuations", "intensity"]
    assert "intensity_rmse" in card["CrossValidation"]["Metrics"]
    gains = card["Evaluation"]["Model minus best baseline"]
    assert {(g["domain"], g["scored"]) for g in gains if g["direction"] == "eeg2fmri"} == {
        ("fluctuations", "trained"), ("intensity", "mapped")}


@pytest.mark.slow
def test_intensity_with_both_directions(group_run, tmp_path):  # noqa: F811
    """EEG→fMRI trains on intensity (and is scored on fluctuations too) while fMRI→EEG, which
    reads fluctuations, gives the same results as the default run's."""
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert app([str(bids), str(copy), "group", "-w", str(tmp_path / "w"), *GROUP_ARGS,
                "--models", "ridge", "--target-domain", "intensity"]) == 0
    same = [pd.read_csv(metrics_path(o, "fmri2eeg", "ridge"), sep="\t", na_values="n/a")
            for o in (out, copy)]
    pd.testing.assert_frame_equal(same[0], same[1])
    e2f = pd.read_csv(metrics_path(copy, "eeg2fmri", "ridge"), sep="\t", na_values="n/a")
    assert set(e2f["domain"]) == {"intensity"} and (e2f["data_range"] == 1.0).all()
    assert "fluctuations_r_temporal" in e2f and "fluctuations_baseline_train_mean_rmse" in e2f
    card = json.loads((copy / "models" / "eeg2fmri" / "ridge" / "model.json").read_text())
    assert card["Config"]["target_domain"] == "intensity"
    assert card["Evaluation"]["ScoredDomains"] == ["intensity", "fluctuations"]
    # The fMRI→EEG card names its input's domain, not the EEG→fMRI target domain.
    f2e = json.loads((copy / "models" / "fmri2eeg" / "ridge" / "model.json").read_text())
    assert f2e["Evaluation"]["InputDomain"] == "fluctuations"
    assert "TargetDomain" not in f2e["Evaluation"]


# Small size: ridge only; three subjects (the poster's 5 folds need 5); band-power EEG inputs
# keep voxel-target ridge weights small (every STFT bin × 20 k voxels would need gigabytes).
PRESET_ARGS = {
    "poster": ["--models", "ridge", "--cv-folds", "3"],
    "bricman2021": ["--models", "ridge", "--allow-leaky-split"],
    "calhas2023": ["--models", "ridge", "--eeg-features", "bands"],
    "bruno2025": ["--models", "ridge"],
}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", list(PRESET_ARGS))
def test_each_protocol_runs_end_to_end(group_run, tmp_path, protocol):  # noqa: F811
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    args = [a for a in GROUP_ARGS]
    assert app([str(bids), str(copy), "group", "-w", str(tmp_path / "w"), *args,
                "--protocol", protocol, *PRESET_ARGS[protocol]]) == 0
    direction = PROTOCOLS[protocol]["group"]["direction"]
    table = pd.read_csv(metrics_path(copy, direction, "ridge"), sep="\t", na_values="n/a")
    card = json.loads((copy / "models" / direction / "ridge" / "model.json").read_text())
    html = (copy / "group.html").read_text()
    assert card["Evaluation"]["Protocol"] == protocol
    # The demo's derivatives were preprocessed without the protocol: the report says so.
    warned = f"were not preprocessed with --protocol {protocol}" in html
    assert warned == bool(PROTOCOLS[protocol]["participant"])
    if protocol == "bricman2021":
        assert set(table["split"]) == {"leak-free", "leaky"}
        assert "LEAKY SPLIT" in html and "LEAKY SPLIT" in card["Evaluation"]["LeakySplit"]
    else:
        assert "LEAKY SPLIT" not in html and card["Evaluation"]["LeakySplit"] is None
    if PROTOCOLS[protocol]["group"].get("target_domain") == "intensity":
        assert card["Evaluation"]["TargetDomain"] == "intensity"
        assert (table["data_range"] == 1.0).all()
        # On the demo data the mean volume is near-perfect in the papers' whole-volume SSIM.
        assert table["baseline_train_mean_ssim_volume3d"].mean() > 0.9
        assert table["baseline_train_mean_ssim_brain"].mean() > 0.8
        # The same run scores the fluctuation domain, where the mean volume is no image.
        assert table["fluctuations_baseline_train_mean_ssim_brain"].mean() < 0.2
        assert card["Evaluation"]["ScoredDomains"] == ["intensity", "fluctuations"]
        # Applying the model reproduces its domain: the synthesized BOLD says what it holds.
        model = copy / "models" / "eeg2fmri" / "ridge"
        assert app([str(bids), str(copy), "participant", "--participant-label", EEG_ONLY, "-w",
                    str(tmp_path / "w"), "--skip-bids-validation", "--model-dir",
                    str(model)]) == 0
        sidecar = next((copy / f"sub-{EEG_ONLY}" / "func").glob("*desc-synth_bold.json"))
        assert json.loads(sidecar.read_text())["TargetDomain"] == "intensity"


def test_paper_sizes_build_and_are_larger():
    """Every ``--model-size paper`` preset builds, with more parameters than the small default."""
    from bids_eeg2fmri.evaluation.protocols import PAPER_SIZES
    from bids_eeg2fmri.models import registry

    for direction, target in (("eeg2fmri", "voxels"), ("fmri2eeg", "regions")):
        d = get_direction(direction)
        runs, spec, _ = simulate(n_subjects=1, n_volumes=40, target=target)
        for name in [m for m in registry.available(direction) if m in PAPER_SIZES]:
            shape = d.model_shape(spec, d.default_window(spec, [name]))
            defaults = {name: registry.entry(name, direction).defaults}
            sizes = [sum(p.numel() for p in registry.build(
                name, shape, size_hparams(size, [name], defaults).get(name),
                direction=direction).parameters()) for size in ("small", "paper")]
            assert sizes[1] > sizes[0], (name, sizes)
