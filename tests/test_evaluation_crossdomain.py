"""Both metric domains from one run: the fluctuation ↔ intensity mappings, the other domain's
scores and baselines beside the trained domain's, and fMRI→EEG untouched by the EEG→fMRI domain."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.evaluation.comparison import baseline_columns, gains_table, papers_table
from bids_eeg2fmri.evaluation.crossdomain import (OtherDomain, add_other_domain,
                                                  fluctuations_to_intensity,
                                                  intensity_to_fluctuations, other_domain)
from bids_eeg2fmri.fmri.model_ready import model_ready
from bids_eeg2fmri.group.collect import collect_directions
from bids_eeg2fmri.group.runfiles import find_runs
from bids_eeg2fmri.training.core import cross_validate

from derivsdata import write_outputs
from eeg2fmri_sim import simulate
from test_evaluation_domains import BASELINES, _intensity


def test_fluctuations_to_intensity_restores_the_subjects_volumes():
    rng = np.random.default_rng(0)
    intensity = rng.uniform(500, 900, 50)[None] + rng.normal(0, 5, (30, 50))  # (t, voxels)
    mean, std = intensity.mean(axis=0), intensity.std(axis=0)
    z = (intensity - mean) / std
    got = fluctuations_to_intensity(z, mean, std)
    lo, hi = intensity.min(axis=1, keepdims=True), intensity.max(axis=1, keepdims=True)
    np.testing.assert_allclose(got, (intensity - lo) / (hi - lo), atol=1e-5)
    assert got.min(axis=1).max() == 0 and got.max(axis=1).min() == 1
    # A zero prediction is the subject's mean volume, min-max normalised.
    flat = fluctuations_to_intensity(np.zeros((2, 50)), mean, std)
    np.testing.assert_allclose(flat[0], (mean - mean.min()) / np.ptp(mean), atol=1e-5)


def test_intensity_to_fluctuations_detrends_and_zscores_each_run():
    rng = np.random.default_rng(1)
    t = np.arange(40)
    signal = rng.normal(size=(40, 6))
    pred = 800 + 0.5 * t[:, None] + 0.01 * t[:, None] ** 2 + 3 * signal  # drift + signal
    run_index = np.repeat([0, 1], 20)
    volume = np.concatenate([np.arange(3, 23), np.arange(5, 45, 2)])  # the second with gaps
    got = intensity_to_fluctuations(pred, run_index, volume)
    for r in (0, 1):
        at = run_index == r
        np.testing.assert_allclose(got[at].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(got[at].std(axis=0), 1, atol=1e-5)
    # The first run (consecutive volumes) is exactly what builds the fluctuation targets.
    np.testing.assert_allclose(got[:20], model_ready(pred[:20].T).T, atol=1e-5)
    # The drift is gone from both runs: what is left follows the signal, far better than the
    # raw predicted intensities do.
    for at in (slice(0, 20), slice(20, 40)):
        r = np.array([np.corrcoef(got[at, k], signal[at, k])[0, 1] for k in range(6)])
        raw = np.array([np.corrcoef(pred[at, k], signal[at, k])[0, 1] for k in range(6)])
        assert r.min() > 0.85 and r.mean() > raw.mean() + 0.1, (r, raw)


def test_other_domain_names():
    assert other_domain("fluctuations") == "intensity"
    assert other_domain("intensity") == "fluctuations"


@pytest.fixture(scope="module")
def one_run():
    """One cross-validation trained on fluctuations, also scored in the intensity domain."""
    runs, spec, _ = simulate(n_subjects=3, n_volumes=120, n_runs=2, seed=3)
    cv = cross_validate(runs, spec, ["ridge"], regime="loso")
    other = OtherDomain("intensity", [np.asarray(r.bold) for r in _intensity(runs, spec)])
    data = SimpleNamespace(direction="eeg2fmri", domain="fluctuations", other=other, runs=runs,
                           spec=spec)
    # The trained domain's columns as the group level's fold table names them.
    table = pd.DataFrame([{"direction": "eeg2fmri", "model": rec["model"], "fold": rec["fold"],
                           "r": rec["model_r_temporal"],
                           **{k: rec[f"model_{k}"] for k in ("ssim_brain", "ssim_volume3d")},
                           **baseline_columns("eeg2fmri", rec)}
                          for rec in cv.table.to_dict("records")])
    return add_other_domain(table, cv, data)


def test_one_run_carries_both_domains(one_run):
    s = one_run.mean(numeric_only=True)
    assert set(one_run["domain"]) == {"fluctuations"}
    # Fluctuations (trained): the mean volume is no image; ridge beats every baseline.
    assert s["baseline_train_mean_ssim_brain"] < 0.2
    for b in BASELINES:
        assert s["ssim_brain"] > s[f"baseline_{b}_ssim_brain"], b
        assert s["r"] > np.nan_to_num(s[f"baseline_{b}_r_temporal"]), b
    # Intensity (mapped): the mean volume is near-perfect, scored on a data range of 1.
    assert s["intensity_data_range"] == 1.0
    assert s["intensity_baseline_train_mean_ssim_brain"] > 0.9
    assert (s["intensity_baseline_subject_mean_psnr_brain"]
            > s["intensity_baseline_train_mean_psnr_brain"])  # the subject's anatomy
    assert s["intensity_subject_mean_oracle"] == 0.0  # every subject has another run
    # The mapped prediction carries the subject's anatomy and the EEG-driven change.
    assert s["intensity_ssim_brain"] > 0.9
    assert s["intensity_r_temporal"] > 0.1
    assert "intensity_ssim_brain_minus_best_baseline" in one_run


def test_papers_and_gains_read_the_mapped_domain(one_run):
    t = papers_table(one_run, "fluctuations")
    bruno = t[(t["paper"] == "Bruno 2025") & (t["metric"] == "ssim_volume3d")].iloc[0]
    assert bruno["mean_volume_here"] == pytest.approx(
        one_run["intensity_baseline_train_mean_ssim_volume3d"].mean())
    assert bruno["best_model_here"] == pytest.approx(one_run["intensity_ssim_volume3d"].mean())
    assert "mapped" in bruno["note"]
    g = gains_table(one_run)
    assert list(g["domain"]) == ["fluctuations", "intensity"]
    assert list(g["scored"]) == ["trained", "mapped"]
    assert g.loc[g["domain"] == "fluctuations", "ssim_brain"].iloc[0] > 0


def test_intensity_with_both_directions_keeps_fmri2eeg_on_fluctuations(tmp_path):
    bold = write_outputs(tmp_path / "out", res=4, n_volumes=40)["bold"]
    bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"RepetitionTime": 2.0, "NonSteadyStateVolumes": 2}))
    files = find_runs(tmp_path / "out")
    got = {dom: collect_directions(files, ["eeg2fmri", "fmri2eeg"], res=4, target="voxels",
                                   cache_dir=tmp_path / f"cache_{dom}", target_domain=dom)
           for dom in ("fluctuations", "intensity")}
    f2e = [got[d]["fmri2eeg"] for d in got]
    assert [d.domain for d in f2e] == ["fluctuations", "fluctuations"]
    np.testing.assert_array_equal(np.asarray(f2e[0].runs[0].bold), np.asarray(f2e[1].runs[0].bold))
    np.testing.assert_array_equal(f2e[0].labels, f2e[1].labels)
    e2f = got["intensity"]["eeg2fmri"]
    assert e2f.domain == "intensity" and e2f.other.domain == "fluctuations"
    bold = np.asarray(e2f.runs[0].bold)
    assert bold.min() >= 0 and bold.max() <= 1 and bold.mean() > 0.2  # min-max intensities
    # The other domain's targets are the fluctuation run's: the same voxels, z-scored.
    np.testing.assert_allclose(e2f.other.bold[0],
                               np.asarray(got["fluctuations"]["eeg2fmri"].runs[0].bold),
                               atol=1e-6)
    assert got["fluctuations"]["eeg2fmri"].other.domain == "intensity"
