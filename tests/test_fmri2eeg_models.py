"""fMRI→EEG windows, dataset, registry entries and the autoregressive decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import simulate

from bids_eeg2fmri.data.splits import make_folds
from bids_eeg2fmri.data.windows import RunArrays, SequenceSpec, index_samples
from bids_eeg2fmri.errors import DataError, UsageError
from bids_eeg2fmri.models import registry
from bids_eeg2fmri.models.base import ModelShape
from bids_eeg2fmri.models.eeg2fmri.ridge import Ridge
from bids_eeg2fmri.training import TrainConfig
from bids_eeg2fmri.training import FMRI2EEG, evaluate, fit, load_model
from bids_eeg2fmri.training.direction import fmri2eeg_shape as model_shape

SHAPE = ModelShape(window=12, n_channels=4, n_freqs=1, n_frames=1, n_targets=5 * 6, horizon=5)


def test_sequence_samples_respect_runs_dummies_and_eeg():
    n = 40
    valid = np.ones(n, bool)
    valid[30] = False
    run = RunArrays(eeg=np.zeros((n, 2, 3, 1)), bold=np.zeros((n, 4)), subject="01",
                    retained=np.arange(n) >= 2, eeg_valid=valid)
    spec = SequenceSpec(window=10, horizon=4)
    assert spec.offset == 3
    vols = spec.sample_volumes(run)
    starts = spec.window_start(vols)
    assert starts.min() == 2 and (starts + spec.window <= n).all()
    # No predicted TR lacks EEG: volume 30 is in no sample's horizon.
    assert not ((vols[:, None] + np.arange(4)) == 30).any()
    assert len(vols) == len(set(range(2, n - 9))) - 4
    with pytest.raises(DataError, match="horizon"):
        SequenceSpec(window=4, horizon=5)


def test_splits_accept_sequence_spec_and_buffer_windows():
    runs, spec, _ = simulate(n_subjects=5, n_volumes=120, seed=1)
    window = SequenceSpec(window=20, horizon=5)
    samples = index_samples(runs, window)
    folds = make_folds(samples, "kfold", spec=window, tr=spec.tr, k=5)
    assert all(samples.iloc[f.test]["subject"].nunique() == 1 for f in folds)
    blocked = make_folds(samples, "blocked", spec=window, tr=spec.tr, k=3)
    buf = window.min_buffer(spec.tr)
    assert buf == 20 + 10
    for f in blocked:
        tr_, te = samples.iloc[f.train], samples.iloc[f.test]
        for r in te["run_index"].unique():
            d = np.abs(tr_[tr_.run_index == r].volume.to_numpy()[:, None]
                       - te[te.run_index == r].volume.to_numpy()[None])
            assert d.min() > window.window  # training windows never touch test windows
    with pytest.raises(UsageError, match="shuffled"):
        make_folds(samples, "shuffled", spec=window, tr=spec.tr)


def test_registry_direction_and_ridge_reuse():
    assert registry.available("fmri2eeg") == ["ridge", "rnn-seq2seq"]
    assert "rnn-seq2seq" not in registry.available()
    assert registry.entry("ridge").direction == "eeg2fmri"
    e = registry.entry("ridge", "fmri2eeg")
    assert e.closed_form and issubclass(e.cls, Ridge)
    assert registry.entry("rnn-seq2seq", "fmri2eeg").defaults["cell"] == "gru"
    with pytest.raises(UsageError, match="unknown model 'rnn-seq2seq'"):
        registry.entry("rnn-seq2seq")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_shapes_and_gradient(cell):
    torch.manual_seed(0)
    model = registry.build("rnn-seq2seq", SHAPE, {"cell": cell}, direction="fmri2eeg")
    x = torch.randn(3, 12, 4)
    y = torch.randn(3, 30)
    model.train()
    loss = model.training_loss({"x": x, "y": y})
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.eval()(x).shape == (3, 30)
    assert isinstance(model.encoder, torch.nn.GRU if cell == "gru" else torch.nn.LSTM)


def test_autoregressive_inference_ignores_ground_truth():
    torch.manual_seed(0)
    model = registry.build("rnn-seq2seq", SHAPE, {"dropout": 0.0}, direction="fmri2eeg")
    x = torch.randn(4, 12, 4)
    y1, y2 = torch.randn(4, 30), torch.randn(4, 30) * 5
    model.eval()
    with torch.no_grad():
        p0, p1, p2 = model(x), model(x, y1), model(x, y2)
    torch.testing.assert_close(p0, p1, rtol=0, atol=0)
    torch.testing.assert_close(p0, p2, rtol=0, atol=0)
    # Step k is the decoder applied to the model's own step k − 1 (zeros before the first).
    with torch.no_grad():
        ctx = model.encode(x)
        prev = torch.zeros(4, 6)
        for k in range(5):
            prev = model.decoder(torch.cat([ctx[:, k], prev], dim=1))
            torch.testing.assert_close(p0.reshape(4, 5, 6)[:, k], prev)
    # The same comparison can fail: with teacher forcing the truth changes the output.
    model.train()
    model.teacher_prob = 1.0
    with torch.no_grad():
        t1, t2 = model(x, y1), model(x, y2)
    torch.testing.assert_close(t1.reshape(4, 5, 6)[:, 0], t2.reshape(4, 5, 6)[:, 0])
    assert not torch.allclose(t1.reshape(4, 5, 6)[:, 1:], t2.reshape(4, 5, 6)[:, 1:])


def test_scheduled_sampling_schedule():
    model = registry.build("rnn-seq2seq", SHAPE, {"sampling_epochs": 4, "min_teacher_forcing": 0.2,
                                                  "teacher_forcing": 1.0}, direction="fmri2eeg")
    probs = []
    for epoch in range(6):
        model.set_epoch(epoch)
        probs.append(model.teacher_prob)
    np.testing.assert_allclose(probs, [1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    fixed = registry.build("rnn-seq2seq", SHAPE, {"scheduled_sampling": False,
                                                  "teacher_forcing": 0.5}, direction="fmri2eeg")
    fixed.set_epoch(10)
    assert fixed.teacher_prob == 0.5


def test_fit_save_load_and_bad_input(tmp_path):
    runs, spec, info = simulate(n_subjects=3, n_volumes=80, seed=2)
    window = SequenceSpec(window=12, horizon=3)
    fitted = fit(runs, spec, "rnn-seq2seq", direction=FMRI2EEG, window=window,
                 train_config=TrainConfig(epochs=2, progress=False), out_dir=tmp_path)
    assert fitted.model.shape == model_shape(spec, window)
    loaded = load_model(tmp_path / "model.safetensors")
    a = evaluate(fitted, runs, bands=info["bands"], groups=info["groups"])
    b = evaluate(loaded, runs, bands=info["bands"], groups=info["groups"])
    np.testing.assert_allclose(a.pred, b.pred, atol=1e-6)
    assert a.pred.shape == (len(a.samples), 3, 6, 8)
    assert (tmp_path / "losses.tsv").exists()
    bad = [RunArrays(eeg=r.eeg, bold=np.asarray(r.bold)[:, :3], subject=r.subject,
                     retained=r.retained) for r in runs]
    with pytest.raises(DataError, match="BOLD has 3 targets"):
        evaluate(fitted, bad)
    nan = np.asarray(runs[0].bold).copy()
    nan[40, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fit([RunArrays(eeg=runs[0].eeg, bold=nan, subject="01", retained=runs[0].retained)],
            spec, "ridge", direction=FMRI2EEG, window=window)
    with pytest.raises(UsageError, match="unknown model 'mlp' for fmri2eeg"):
        fit(runs, spec, "mlp", direction=FMRI2EEG, window=window)


def test_ensemble_members_are_independent_and_averaged():
    torch.manual_seed(0)
    one = registry.build("rnn-seq2seq", SHAPE, {"members": 1}, direction="fmri2eeg")
    torch.manual_seed(0)
    three = registry.build("rnn-seq2seq", SHAPE, {"members": 3}, direction="fmri2eeg")
    # The first member is the single model, under the names model files always had.
    assert set(one.state_dict()) < set(three.state_dict())
    for k, v in one.state_dict().items():
        torch.testing.assert_close(three.state_dict()[k], v)
    x, y = torch.randn(4, 12, 4), torch.randn(4, 30)
    three.eval()
    with torch.no_grad():
        members = [three._generate(m, x, None) for m in three._members()]
        torch.testing.assert_close(three(x), torch.stack(members).mean(0))
    assert not torch.allclose(members[0], members[1])  # differently initialised
    # Each member learns from its own error: the loss is the mean of the members' losses.
    three.train()
    three.drop.p = 0.0
    for m in three.extra:
        m.drop.p = 0.0
    with torch.no_grad():
        own = torch.stack([torch.nn.functional.mse_loss(three._generate(m, x, y), y)
                           for m in three._members()]).mean()
        torch.testing.assert_close(three.training_loss({"x": x, "y": y}), own)
    with pytest.raises(ValueError, match="members"):
        registry.build("rnn-seq2seq", SHAPE, {"members": 0}, direction="fmri2eeg")
