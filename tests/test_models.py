"""Every registered model trains and beats the baselines; model-specific mechanics."""

from __future__ import annotations

import _torch_threads  # noqa: F401
import numpy as np
import pytest
import torch

from bids_eeg2fmri.data.windows import WindowSpec
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.models import registry
from bids_eeg2fmri.models.base import ModelShape
from bids_eeg2fmri.models.layers import sparsemax
from bids_eeg2fmri.training import TrainConfig, cross_validate
from eeg2fmri_sim import DRIVEN, UNDRIVEN, region_labels, simulate

MODELS = ["ridge", "mlp", "cnn", "transformer", "topo-attention", "topo-attention-calhas",
          "transformer-cnn", "unet"]
WIN = WindowSpec(window=8, history=3)  # one window for all, so all are scored on the same samples
CFG = TrainConfig(epochs=20, patience=6)


def test_registry_lists_every_model_with_defaults():
    assert registry.available() == MODELS
    for name in MODELS:
        e = registry.entry(name)
        assert e.paper and isinstance(e.defaults, dict)
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        registry.entry("nope")
    with pytest.raises(UsageError, match="has no setting bogus"):
        registry.resolve_hparams("mlp", {"bogus": 1})


@pytest.mark.parametrize("grid", [True, False], ids=["voxels", "regions"])
@pytest.mark.parametrize("name", MODELS)
def test_shapes_derive_from_the_data(name, grid):
    mask = region_labels((5, 6, 4))[0] if grid else None
    n_t = int(mask.sum()) if grid else 7
    shape = ModelShape(window=3, n_channels=5, n_freqs=4, n_frames=2, n_targets=n_t, grid=mask,
                       history=2)
    torch.manual_seed(0)
    model = registry.build(name, shape)
    batch = {"x": torch.randn(6, 3, 5, 4, 2), "y": torch.randn(6, n_t), "y_hist": torch.randn(6, 2, n_t)}
    assert model(batch["x"]).shape == (6, n_t)
    if not registry.entry(name).closed_form:
        model.set_epoch(100)
        loss = model.training_loss(batch)
        loss.backward()
        assert torch.isfinite(loss)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_sparsemax_matches_its_definition():
    z = torch.tensor([[1.0, 0.8, -1.0, 0.1], [3.0, 0.0, 0.0, 0.0]])
    p = sparsemax(z)
    assert torch.allclose(p.sum(-1), torch.ones(2))
    # reference: the Euclidean projection onto the simplex, by bisection on the threshold
    for row, got in zip(z, p):
        lo, hi = float(row.min()) - 1, float(row.max())
        for _ in range(100):
            tau = (lo + hi) / 2
            lo, hi = (tau, hi) if torch.clamp(row - tau, min=0).sum() > 1 else (lo, tau)
        assert torch.allclose(got, torch.clamp(row - tau, min=0), atol=1e-5)
    assert p[1].tolist() == [1.0, 0.0, 0.0, 0.0]  # a dominant score takes all the weight
    assert (p[0] == 0).any()


def test_topo_attention_returns_a_sparse_channel_map():
    shape = ModelShape(window=3, n_channels=6, n_freqs=4, n_frames=1, n_targets=5)
    model = registry.build("topo-attention", shape)
    a = model.attention_map(torch.randn(2, 3, 6, 4, 1) * 5)
    assert a.shape == (2, 6, 6)
    assert torch.allclose(a.sum(-1), torch.ones(2, 6), atol=1e-5) and (a >= 0).all()


@pytest.mark.parametrize("name", ["transformer", "transformer-cnn"])
def test_autoregressive_inference_reads_only_eeg(name):
    """Teacher forcing in training, but predictions never see the targets."""
    shape = ModelShape(window=3, n_channels=4, n_freqs=3, n_frames=1, n_targets=9,
                       grid=np.ones((3, 3, 1), bool), history=2)
    torch.manual_seed(0)
    model = registry.build(name, shape).eval()
    model.set_epoch(100)
    x = torch.randn(4, 3, 4, 3, 1)
    b1 = {"x": x, "y": torch.randn(4, 9), "y_hist": torch.randn(4, 2, 9)}
    b2 = {"x": x, "y": torch.randn(4, 9) * 5, "y_hist": torch.randn(4, 2, 9) * 5}
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        assert not torch.isclose(model.training_loss(b1), model.training_loss(b2))


def _loso(models, n_folds=None):
    runs, spec, _ = simulate(n_subjects=4, n_volumes=120, target="voxels", seed=0)
    res = cross_validate(runs, spec, models, regime="loso", window=WIN, train_config=CFG)
    table = res.table if n_folds is None else res.table.groupby("model").head(n_folds)
    return table


def _check_beats_baselines(table):
    for _, row in table.iterrows():
        assert row.model_mse < row.train_mean_mse, (row.model, row.fold)
        assert row.model_mse < row.subject_mean_mse, (row.model, row.fold)


def _check_recovery(table, name):
    mean = table[table.model == name].mean(numeric_only=True)
    for k in DRIVEN:
        ceiling = mean[f"ceiling_region_{k}"]
        # the criterion: r with the noiseless truth >= 0.8 x the noise ceiling ...
        assert mean[f"model_r_truth_region_{k}"] >= 0.8 * ceiling, (name, k)
        # ... and the stricter one: r with the noisy measurement itself >= 0.8 x the ceiling
        assert mean[f"model_r_region_{k}"] >= 0.8 * ceiling, (name, k)
    for k in UNDRIVEN:
        assert abs(mean[f"model_r_region_{k}"]) < 0.2, (name, k)
    return mean


def test_loso_ridge_mlp_cnn_beat_baselines_and_reach_the_ceiling():
    table = _loso(["ridge", "mlp", "cnn"])
    assert len(table) == 12
    _check_beats_baselines(table)
    best = table.groupby("model").model_mse.mean().idxmin()
    _check_recovery(table, best)


def test_first_loso_fold_attention_models_beat_baselines():
    """The heavier models on one leave-one-subject-out fold (all four folds: the slow test)."""
    table = _loso(["transformer", "topo-attention", "transformer-cnn"], n_folds=1)
    assert len(table) == 3
    _check_beats_baselines(table)


@pytest.mark.slow
def test_loso_every_model_beats_baselines_on_every_fold():
    table = _loso(MODELS)
    assert len(table) == 4 * len(MODELS)
    _check_beats_baselines(table)
    best = table.groupby("model").model_mse.mean().idxmin()
    _check_recovery(table, best)
