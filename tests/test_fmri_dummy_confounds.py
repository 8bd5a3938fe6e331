"""Dummy-scan detection and confounds (FD, DVARS) against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.fmri import confounds as conf
from bids_eeg2fmri.fmri.dummy import count_leading_outliers, detect_dummy_scans


def _series_with_overshoot(n_dummy, n=60, seed=0, noise=0.005):
    """Brain-like 4-D series; volume t is scaled by 1 + 0.8·0.4^t for t < n_dummy (T1 overshoot)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((12, 12, 8), dtype=np.float32)
    base[2:10, 2:10, 1:7] = 1000.0
    data = base[..., None] * (1 + noise * rng.normal(size=(1, 1, 1, n))).astype(np.float32)
    data += rng.normal(0, 5, data.shape).astype(np.float32)
    for t in range(n_dummy):
        data[..., t] *= 1 + 0.8 * 0.4 ** t
    return data


@pytest.mark.parametrize("n_dummy", [0, 1, 3, 5])
def test_dummy_scans_counted_exactly(n_dummy):
    assert detect_dummy_scans(_series_with_overshoot(n_dummy, seed=n_dummy)) == n_dummy


def test_dark_first_volume_is_not_a_dummy():
    data = _series_with_overshoot(0)
    data[..., 0] *= 0.8  # a dip (motion, spike) is not T1 saturation
    assert detect_dummy_scans(data) == 0


def test_leading_outliers_stop_at_first_normal_value():
    x = np.array([5.0, 1.0, 5.0] + [1.0, 1.1, 0.9] * 10)
    assert count_leading_outliers(x) == 1


def test_framewise_displacement_by_hand():
    params = np.array([[0, 0, 0, 0, 0, 0],
                       [0.1, -0.2, 0.0, 0.001, 0, -0.002],
                       [0.1, -0.2, 0.5, 0.001, 0.003, -0.002]], dtype=float)
    fd = conf.framewise_displacement(params)
    assert np.isnan(fd[0])
    assert fd[1] == pytest.approx(0.1 + 0.2 + 50 * (0.001 + 0.002))
    assert fd[2] == pytest.approx(0.5 + 50 * 0.003)


def test_dvars_by_hand_and_standardised_near_one_for_white_noise():
    rng = np.random.default_rng(0)
    series = 1000.0 + rng.normal(0, 10, size=(4000, 200))
    dv, std = conf.dvars(series)
    manual = np.sqrt(np.mean(np.diff(series * 1000 / np.median(series.mean(1)), axis=1) ** 2, axis=0))
    np.testing.assert_allclose(dv[1:], manual, rtol=1e-10)
    assert np.isnan(dv[0]) and np.isnan(std[0])
    # For stationary white noise the expected DVARS is sqrt(2)·sd: std_dvars ≈ 1.
    assert np.median(std[1:]) == pytest.approx(1.0, abs=0.05)
    # A one-frame spike stands out in the differences into and out of it.
    series[:, 100] += 40
    _, std = conf.dvars(series)
    assert std[100] > 2.5 and std[101] > 2.5 and np.median(std[1:]) < 1.2


def test_confounds_table_writes_na_and_described_columns(tmp_path):
    rng = np.random.default_rng(1)
    params = rng.normal(0, 0.1, (20, 6))
    data = 1000 + rng.normal(0, 10, (6, 6, 6, 20))
    table = conf.confounds_table(params, data)
    path = tmp_path / "c.tsv"
    conf.write_confounds_tsv(table, path)
    text = path.read_text().splitlines()
    header = text[0].split("\t")
    base = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    assert header[:6] == base
    assert set(header[6:]) == {f"{p}_{e}" for p in base
                               for e in ("derivative1", "power2", "derivative1_power2")} | {
        "framewise_displacement", "rmsd", "dvars", "std_dvars"}
    first = dict(zip(header, text[1].split("\t")))
    assert [first[c] for c in ("framewise_displacement", "rmsd", "dvars", "std_dvars",
                               "rot_z_derivative1")] == ["n/a"] * 5
    back = pd.read_csv(path, sep="\t", na_values="n/a")
    np.testing.assert_allclose(back[["trans_x", "rot_z"]].to_numpy(), params[:, [0, 5]], rtol=1e-6)
    side = conf.confounds_sidecar(list(table.columns))
    assert set(side) == set(table.columns)
    assert side["rot_x"]["Units"] == "rad" and side["trans_y"]["Units"] == "mm"
    json.dumps(side)
