"""The issue's acceptance on simulated data: what the mean volume scores in each domain, and that
ridge beats every baseline on the fluctuations the EEG drives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bids_eeg2fmri.evaluation.domains import check_domain, minmax_volumes
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.training.core import cross_validate

from eeg2fmri_sim import GRID, region_labels, simulate

BASELINES = ("train_mean", "subject_mean", "subject_mean_fluct")


def _intensity(runs, spec, seed=1):
    """Give the simulated signal change an anatomy: a shared tissue contrast plus a per-subject
    deviation, BOLD at ~1 % of it, then min-max per volume (the papers' intensity domain)."""
    rng = np.random.default_rng(seed)
    mask, labels = region_labels(GRID)
    depth = np.linalg.norm(np.indices(GRID) - (np.array(GRID)[:, None, None, None] - 1) / 2, axis=0)
    anatomy = (800 + 60 * labels - 40 * depth)[mask]
    subject_anat = {r.subject: anatomy + rng.normal(scale=15, size=anatomy.shape) for r in runs}
    out = []
    for r in runs:
        base = subject_anat[r.subject]
        vol = base * (1 + 0.01 * np.asarray(r.bold, dtype=np.float64))
        out.append(dataclasses.replace(r, bold=minmax_volumes(vol), truth=None))
    return out


@pytest.fixture(scope="module")
def data():
    return simulate(n_subjects=3, n_volumes=120, n_runs=2, seed=3)


def test_fluctuation_domain_ridge_beats_every_baseline(data):
    runs, spec, _ = data
    s = cross_validate(runs, spec, ["ridge"], regime="loso").summary().loc["ridge"]
    assert s["train_mean_ssim_brain"] < 0.2
    for b in BASELINES:
        assert s["model_ssim_brain"] > s[f"{b}_ssim_brain"], b
        # A constant prediction has no r: it predicts nothing, i.e. r = 0.
        assert s["model_r_temporal"] > np.nan_to_num(s[f"{b}_r_temporal"]), b
    # The background lifts whole-volume SSIM of the mean above its brain-only SSIM.
    assert s["subject_mean_oracle"] == 0.0


def test_intensity_domain_mean_volume_is_near_perfect(data):
    runs, spec, _ = data
    cv = cross_validate(_intensity(runs, spec), spec, ["ridge"], regime="loso",
                        domain="intensity")
    s = cv.summary().loc["ridge"]
    assert s["data_range"] == 1.0
    assert s["train_mean_ssim_brain"] > 0.9
    assert s["subject_mean_psnr_brain"] > s["train_mean_psnr_brain"]  # the subject's anatomy
    assert np.isfinite(s["model_ssim_volume3d"]) and np.isfinite(s["model_ssim_slices2d"])


def test_minmax_and_domain_names():
    v = minmax_volumes(np.array([[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]))
    np.testing.assert_allclose(v, [[0, 0.5, 1], [0, 0, 0]])
    assert check_domain("intensity") == "intensity"
    with pytest.raises(UsageError, match="fluctuations"):
        check_domain("raw")
