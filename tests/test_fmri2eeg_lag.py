"""``--hrf-lag`` for fMRI→EEG: the BOLD window ends ``lag`` TRs after the predicted EEG."""

from __future__ import annotations

import numpy as np
import pytest

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import simulate

from bids_eeg2fmri.config import GroupConfig
from bids_eeg2fmri.data.splits import make_folds
from bids_eeg2fmri.data.windows import RunArrays, SequenceSpec, index_samples
from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.training import FMRI2EEG, evaluate, fit, load_model


def test_lagged_windows_stay_inside_the_run_and_after_the_target():
    n = 30
    run = RunArrays(eeg=np.zeros((n, 2, 3, 1)), bold=np.zeros((n, 4)), subject="01",
                    retained=np.arange(n) >= 2)
    for lag in (0, 2, 5):
        spec = SequenceSpec(window=8, horizon=3, lag=lag)
        vols = spec.sample_volumes(run)
        starts = spec.window_start(vols)
        assert len(vols) and starts.min() >= 2 and (starts + spec.window <= n).all()
        # The window ends exactly `lag` TRs after the last predicted TR.
        np.testing.assert_array_equal(starts + spec.window - 1, vols + spec.horizon - 1 + lag)
        # A sample exists for every window that fits: the last window ends at the run's end.
        assert (starts + spec.window).max() == n
    assert SequenceSpec(window=8, horizon=3).offset == 2  # no lag: centred, as before
    with pytest.raises(DataError, match="HRF lag"):
        SequenceSpec(window=8, horizon=3, lag=6)


def test_window_from_turns_seconds_into_tr_lag():
    _, spec, _ = simulate(n_subjects=1, n_volumes=60, seed=0)
    gr = GroupConfig(window_trs=6, horizon_trs=1, hrf_lag=8.0)
    assert FMRI2EEG.window_from(gr, spec, ["ridge"]).lag == round(8.0 / spec.tr)
    assert FMRI2EEG.window_from(GroupConfig(), spec, ["ridge"]).lag is None


def _loso_r(runs, spec, info, window):
    samples = index_samples(runs, window)
    rs = []
    for f in make_folds(samples, "loso", spec=window, tr=spec.tr):
        fitted = fit(runs, spec, "ridge", direction=FMRI2EEG, window=window, samples=samples,
                     rows=f.train)
        ev = evaluate(fitted, runs, samples=samples, rows=f.test, train_rows=f.train,
                      bands=info["bands"], groups=info["groups"])
        rs.append(ev.metrics["r_overall"])
    return float(np.mean(rs)), fitted


def test_lag_raises_ridge_r_when_bold_lags_eeg(tmp_path):
    # The BOLD response peaks ~8 s (4 TRs) after the EEG it reflects: a 5-TR window ending with the
    # predicted TR never sees it, one ending 4 TRs later does.
    runs, spec, info = simulate(n_subjects=4, n_volumes=150, seed=3, delay_range=(3.0, 3.0))
    r0, _ = _loso_r(runs, spec, info, SequenceSpec(window=5, horizon=1, lag=0))
    r4, fitted = _loso_r(runs, spec, info, SequenceSpec(window=5, horizon=1, lag=4))
    assert r4 > r0 + 0.15, (r0, r4)
    # The model file carries the lag, so apply cuts the same windows.
    fitted.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.window == fitted.window and loaded.window.lag == 4
    assert loaded.window.describe(spec.tr)["placement"].startswith("ends 4 TR")


def test_rnn_reads_its_states_where_the_lagged_window_puts_the_targets():
    from bids_eeg2fmri.models import registry
    from bids_eeg2fmri.models.base import ModelShape
    from bids_eeg2fmri.training.direction import fmri2eeg_shape

    _, spec, _ = simulate(n_subjects=1, n_volumes=60, seed=0)
    for lag, offset in ((None, 3), (1, 5), (6, 0)):
        shape = fmri2eeg_shape(spec, SequenceSpec(window=10, horizon=4, lag=lag))
        assert ModelShape.from_dict(shape.to_dict()) == shape
        assert registry.build("rnn-seq2seq", shape, {}, direction="fmri2eeg").offset == offset


def test_blocked_folds_keep_lagged_windows_apart():
    runs, spec, _ = simulate(n_subjects=2, n_volumes=150, seed=1)
    window = SequenceSpec(window=12, horizon=2, lag=4)
    samples = index_samples(runs, window)
    folds = make_folds(samples, "blocked", spec=window, tr=spec.tr, k=3)
    assert window.min_buffer(spec.tr) == 12 + 10  # the lag lies inside the window
    for f in folds:
        tr_, te = samples.iloc[f.train], samples.iloc[f.test]
        for r in te["run_index"].unique():
            a = window.window_start(tr_[tr_.run_index == r].volume.to_numpy())
            b = window.window_start(te[te.run_index == r].volume.to_numpy())
            # No training window shares a BOLD volume (or a predicted TR) with a test window.
            assert np.abs(a[:, None] - b[None]).min() >= window.window
