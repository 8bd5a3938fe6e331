"""Calhas' extensions: participant classification through the frozen synthesis model,
attribution maps, and the topo-attention layers (DCT decoder, variational read-out with the
Laplacian loss, OrganizeChannels, the paper's loss)."""

from __future__ import annotations

import dataclasses
import math

import _torch_threads  # noqa: F401
import numpy as np
import pandas as pd
import pytest
import torch

from bids_eeg2fmri.analysis.attribution import (integrated_gradients, relevance_maps,
                                                relevance_table, ridge_relevance)
from bids_eeg2fmri.data.windows import WindowSpec, index_samples
from bids_eeg2fmri.errors import ExitCode, UsageError, UserError
from bids_eeg2fmri.group.classify import participant_labels
from bids_eeg2fmri.models import registry
from bids_eeg2fmri.models.base import ModelShape
from bids_eeg2fmri.models.layers import (DCTDecoder, VariationalDense, dct_basis, laplace_nll,
                                         organize_channels)
from bids_eeg2fmri.training import TrainConfig, evaluate, fit
from bids_eeg2fmri.training.classifier import (cross_validate_groups, encoder_features,
                                               participant_folds)
from eeg2fmri_sim import simulate


# ----------------------------------------------------------------------------- classification
def _group_features(n_participants: int, effect: float, seed: int = 0):
    """Window features whose mean differs between two groups by ``effect`` (in SDs) along one
    direction, plus per-participant offsets (participants differ even within a group)."""
    rng = np.random.default_rng(seed)
    feats, who, labels = [], [], {}
    for p in range(n_participants):
        name = f"{p:02d}"
        labels[name] = "patient" if p % 2 else "control"
        centre = rng.normal(scale=0.3, size=6)
        centre[0] += effect * (p % 2)
        feats.append(centre + rng.normal(size=(40, 6)))
        who += [name] * 40
    return np.concatenate(feats), np.array(who), labels


#: The encoder these tests explain or classify through: the registry's default width (1024, chosen
#: on the demo's 3 × 200-volume runs) is more than the few short simulated runs here train in
#: 10–15 epochs; the methods under test do not depend on the width.
SMALL_MLP = {"hidden": 256}


@pytest.mark.parametrize("objective", ["crossentropy", "contrastive"])
def test_head_finds_a_group_difference_and_not_a_missing_one(objective):
    x, who, labels = _group_features(12, effect=1.5)
    res = cross_validate_groups(x, who, labels, objective=objective, folds=6, permutations=99)
    assert res.balanced_accuracy >= 0.9 and res.p_value < 0.05, res.summary()
    assert res.confusion.sum() == 12 and np.trace(res.confusion) >= 11
    x0, who0, labels0 = _group_features(12, effect=0.0, seed=1)
    null = cross_validate_groups(x0, who0, labels0, objective=objective, folds=6, permutations=99)
    assert null.p_value > 0.05, null.summary()
    assert null.chance == 0.5


def test_permutations_reassign_participants_and_are_exact_when_few():
    """With 4 participants there are 4! label orderings: the test enumerates them all."""
    x, who, labels = _group_features(4, effect=4.0)
    res = cross_validate_groups(x, who, labels, folds=4, permutations=1000)
    assert res.n_permutations == math.factorial(4)
    # every ordering reproducing the true split (or its mirror) scores as well as the truth
    assert res.p_value == pytest.approx(np.mean(res.null >= res.balanced_accuracy))
    assert res.p_value >= 8 / 24


def test_folds_hold_out_whole_participants_and_spread_the_classes():
    names = np.array([f"{i:02d}" for i in range(10)])
    labels = np.array([i % 2 for i in range(10)])
    folds = participant_folds(names, labels, 5)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    assert all(set(labels[f]) == {0, 1} for f in folds)


def test_participant_labels_checks_the_column(tmp_path):
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tcohort\nsub-01\tcontrol\nsub-02\tpatient\nsub-03\tn/a\n"
        "sub-04\tcontrol\nsub-05\tpatient\n")
    labels = participant_labels(tmp_path, "cohort", ["01", "02", "03", "04", "05"])
    assert labels == {"01": "control", "02": "patient", "04": "control", "05": "patient"}
    with pytest.raises(UsageError, match="no such column") as exc:
        participant_labels(tmp_path, "diagnosis", ["01"])
    assert exc.value.code == ExitCode.USAGE and "participants.tsv" in str(exc.value.path)
    with pytest.raises(UserError, match="two groups of two") as exc:
        participant_labels(tmp_path, "cohort", ["01", "02", "04"])
    assert exc.value.code == ExitCode.NO_DATA_SELECTED


def test_classification_through_the_synthesis_model_beats_chance_only_with_an_effect():
    """The issue's criterion: simulated patients (attenuated coupling of one source) are told
    from controls through the frozen mlp (p < 0.05); without the effect, chance."""
    out = {}
    for effect in (0.8, 0.0):
        runs, spec, info = simulate(n_subjects=12, n_volumes=100, target="regions",
                                    group_effect=effect, seed=1)
        fitted = fit(runs, spec, "mlp", hparams=SMALL_MLP,
                     train_config=TrainConfig(epochs=15, seed=0))
        samples = index_samples(runs, fitted.window)
        feats = encoder_features(fitted, runs, samples)
        # the last hidden layer, not the output
        assert feats.shape == (len(samples), SMALL_MLP["hidden"])
        out[effect] = cross_validate_groups(feats, samples["subject"], info["cohort"], folds=6,
                                            permutations=100)
    assert out[0.8].balanced_accuracy >= 0.8 and out[0.8].p_value < 0.05, out[0.8].summary()
    assert out[0.0].p_value > 0.05, out[0.0].summary()


# ----------------------------------------------------------------------------- attribution
def test_ridge_closed_form_matches_integrated_gradients():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(12, 3)), rng.normal(size=3)
    x = rng.normal(size=(5, 12))
    lin = torch.nn.Linear(12, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(w.T))
        lin.bias.copy_(torch.as_tensor(b))
    for targets in ([1], [0, 2], None):
        ig, delta = integrated_gradients(lin, torch.as_tensor(x), targets, steps=8)
        assert np.allclose(ig, ridge_relevance(w, b, x, targets), atol=1e-8), targets
        assert np.abs(delta).max() < 1e-6
    # completeness of the closed form: a row sums to F(x) − F(0)
    rel = ridge_relevance(w, b, x, None)
    assert np.allclose(rel.sum(1), 0.5 * ((x @ w) ** 2).sum(1))


def _cell_ranking(rel: np.ndarray, spec) -> pd.Series:
    """Relevance summed per channel group (the simulator's halves) × band (thirds)."""
    table = relevance_table(rel, rel, spec.channels, spec.frequencies)
    half = len(spec.channels) // 2
    table["group"] = np.where(table["channel"].isin(spec.channels[:half]), "A", "B")
    edges = np.asarray(spec.frequencies)[[len(spec.frequencies) // 3,
                                          2 * len(spec.frequencies) // 3]]
    table["band"] = np.digitize(table["frequency"], edges)
    return table.groupby(["group", "band"])["relevance"].sum().sort_values(ascending=False)


@pytest.mark.parametrize("model", ["ridge", "mlp"])
def test_attribution_ranks_the_driving_channel_group_and_band_first(model):
    """Region 1 is driven by source 0 (channels of group A, middle band), region 2 by source 1
    (group B, top band); a third source in the EEG only (channels across both, low band)."""
    runs, spec, _ = simulate(n_subjects=3, n_volumes=120, target="regions", seed=0)
    fitted = fit(runs, spec, model, hparams=SMALL_MLP if model == "mlp" else None,
                 train_config=TrainConfig(epochs=10, seed=0))
    samples = index_samples(runs, fitted.window)
    for targets, driver in (([0], ("A", 1)), ([1], ("B", 2))):
        rel, signed, info = relevance_maps(fitted, runs, samples, targets=targets, steps=16,
                                           max_samples=64)
        assert rel.shape == (fitted.window.window, len(spec.channels), len(spec.frequencies))
        assert info["max_delta"] < 0.05
        ranking = _cell_ranking(rel, spec)
        assert ranking.index[0] == driver, ranking
    rel, _, _ = relevance_maps(fitted, runs, samples, steps=16, max_samples=64)
    assert set(_cell_ranking(rel, spec).index[:2]) == {("A", 1), ("B", 2)}


# ----------------------------------------------------------------------------- Calhas' layers
def test_dct_decoder_is_an_orthonormal_low_pass_basis():
    b = dct_basis(7, 7)
    assert torch.allclose(b.T @ b, torch.eye(7), atol=1e-5)
    mask = np.ones((6, 5, 4), bool)
    dec = DCTDecoder(ModelShape(1, 1, 1, 1, int(mask.sum()), grid=mask), fraction=0.5)
    assert dec.n_coef == (3, 3, 2)
    c = torch.zeros(1, 18)
    c[0, 0] = 1.0  # the DC coefficient alone: a constant volume
    v = dec.from_coefficients(c)
    assert torch.allclose(v, v.mean().expand_as(v), atol=1e-6)
    # the decoder spans the low frequencies only: the highest 3-D cosine is orthogonal to it
    high = torch.einsum("x,y,z->xyz", *(dct_basis(n, n)[:, -1] for n in mask.shape))
    basis = torch.stack([dec.from_coefficients(torch.eye(18)[i:i + 1])[0] for i in range(18)])
    assert (basis @ high.reshape(-1)).abs().max() < 1e-5
    assert torch.linalg.matrix_rank(basis) == 18


def test_variational_dense_kl_and_laplace_loss():
    layer = VariationalDense(4, 3, prior_sd=1.0)
    with torch.no_grad():
        layer.mu.zero_()
        layer.rho.fill_(math.log(math.e - 1))  # softplus → sd 1: the posterior is the prior
    assert float(layer.kl().detach()) == pytest.approx(0.0, abs=1e-5)
    layer.eval()
    h = torch.randn(2, 4)
    assert torch.equal(layer(h)[0], layer(h)[0])  # evaluation: posterior mean, deterministic
    layer.train()
    assert not torch.equal(layer(h)[0], layer(h)[0])
    y, mu = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 0.0]])
    # Laplace NLL with scale b: |y − μ|/b + log 2b
    assert float(laplace_nll(y, mu, torch.zeros(1, 2))) == pytest.approx(1.5 + math.log(2))
    assert float(laplace_nll(y, mu, torch.full((1, 2), math.log(1.5)))) == pytest.approx(
        1.0 + math.log(3.0))


def test_organize_channels_prefers_a_reordering_to_a_selection():
    perm = torch.eye(3)[[1, 2, 0]][None]
    select = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]]])
    assert organize_channels(perm) < organize_channels(select)
    assert float(organize_channels(perm)) == pytest.approx(0.0, abs=1e-5)


def test_topo_attention_loss_is_the_papers_unless_asked():
    """Default: MAE(EEG path) + cosine; the fMRI-path reconstruction only as an option."""
    shape = ModelShape(window=3, n_channels=5, n_freqs=4, n_frames=1, n_targets=6)
    torch.manual_seed(0)
    batch = {"x": torch.randn(8, 3, 5, 4, 1), "y": torch.randn(8, 6)}
    base = registry.build("topo-attention", shape, {"dropout": 0.0})
    extra = registry.build("topo-attention", shape, {"dropout": 0.0,
                                                     "fmri_reconstruction": True})
    extra.load_state_dict(base.state_dict())
    z_eeg = base.encode_eeg(batch["x"])
    z_fmri = base.fmri.encode(batch["y"])
    paper = (torch.nn.functional.l1_loss(base.decode(z_eeg), batch["y"])
             + 1 - torch.nn.functional.cosine_similarity(z_eeg, z_fmri, dim=1).mean())
    assert torch.allclose(base.training_loss(batch), paper, atol=1e-6)
    recon = torch.nn.functional.l1_loss(base.decode(z_fmri), batch["y"])
    assert torch.allclose(extra.training_loss(batch), paper + recon, atol=1e-6)


def test_topo_attention_calhas_trains_and_beats_the_baselines():
    """DCT decoder + variational read-out + OrganizeChannels, one held-out subject."""
    runs, spec, _ = simulate(n_subjects=4, n_volumes=120, target="voxels", seed=0)
    fitted = fit(runs[1:], spec, "topo-attention-calhas", window=WindowSpec(window=8, history=3),
                 train_config=TrainConfig(epochs=20, patience=6))
    m = evaluate(fitted, runs[:1]).metrics
    assert m["model_mse"] < m["train_mean_mse"] and m["model_mse"] < m["subject_mean_mse"], m


def test_simulator_group_effect_writes_cohorts_and_attenuates_the_coupling(tmp_path):
    from bids_eeg2fmri.cli.simulate import main as simulate_cli
    from bids_eeg2fmri.simulate import load_ground_truth
    from bids_eeg2fmri.simulate.sources import ENVELOPE_GAIN

    bids = tmp_path / "bids"
    assert simulate_cli([str(bids), "--quiet", "--subjects", "2", "--volumes", "12", "--grid",
                         "12", "12", "8", "--voxel-size", "14", "14", "16", "--channels", "8",
                         "--sfreq", "200", "--group-effect", "0.75"]) == 0
    table = pd.read_csv(bids / "participants.tsv", sep="\t")
    assert table["cohort"].tolist() == ["control", "patient"]
    assert table["group"].tolist() == ["eegfmri", "eegfmri"]  # the modality column stays
    for sub, coupling in (("01", 1.0), ("02", 0.25)):
        env = load_ground_truth(bids, sub)["source_envelopes"]
        # log envelope = log A + gain · coupling · (unit-variance source)
        assert np.log(env[:, 0]).std() == pytest.approx(ENVELOPE_GAIN * coupling, rel=1e-3)
        assert np.log(env[:, 1]).std() == pytest.approx(ENVELOPE_GAIN, rel=1e-3)
    assert simulate_cli([str(tmp_path / "bad"), "--quiet", "--group-effect", "1.5"]) == 64


def test_group_outputs_classifier_folder_and_report_sections(tmp_path):
    """calhas_outputs (what group/run.py calls) on array data: TSVs, the classifier folder, and
    the report sections rendered into group.html."""
    from types import SimpleNamespace

    from bids_eeg2fmri.config import Config
    from bids_eeg2fmri.group.calhas import calhas_outputs, check_calhas
    from bids_eeg2fmri.modelfiles import read_model_file
    from bids_eeg2fmri.reports.html import write_group_report

    runs, spec, info = simulate(n_subjects=6, n_volumes=60, target="regions", group_effect=0.8,
                                n_channels=8, seed=2)
    # 10-20 names, so that the topomaps find positions
    spec = dataclasses.replace(spec, channels=["O1", "O2", "Oz", "Pz", "Fz", "F3", "F4", "Cz"])
    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in info["cohort"]],
                  "cohort": list(info["cohort"].values())}).to_csv(
        bids / "participants.tsv", sep="\t", index=False)
    config = Config.from_sources({"bids_dir": bids, "output_dir": out, "work_dir": tmp_path / "w",
                                  "classify": "cohort", "classify_permutations": 20,
                                  "classify_objective": "both", "attribution": True,
                                  "attribution_region": "region2", "attribution_steps": 4,
                                  "cv_folds": 3})
    data = SimpleNamespace(runs=runs, spec=spec, subjects=sorted(info["cohort"]),
                           region_names=list(spec.region_names))
    check_calhas(config, {"eeg2fmri": data})
    cfg = TrainConfig(epochs=2, seed=0)
    finals = {m: (fit(runs, spec, m, train_config=cfg), 0, "")
              for m in ("ridge", "mlp", "topo-attention")}
    sections = calhas_outputs(config, data, finals, list(finals), out,
                              {"theta": [4, 8], "alpha": [8, 12], "beta": [13, 30]}, write=True)
    stats = pd.read_csv(out / "group" / "direction-eeg2fmri_model-mlp_desc-classifyCohort_"
                        "stats.tsv", sep="\t")
    assert stats["objective"].tolist() == ["crossentropy", "contrastive"]
    assert (stats["n_participants"] == 6).all() and (stats["n_permutations"] == 20).all()
    folder = out / "models" / "classifier" / "cohort_crossentropy"
    state = read_model_file(folder / "model.safetensors")
    assert state["classes"] == ["control", "patient"] and state["encoder"] == "mlp"
    assert np.asarray(state["head"]["coef"]).shape == (1, 16)
    for m in finals:
        rel = pd.read_csv(out / "group" / f"direction-eeg2fmri_model-{m.replace('-', '')}"
                          "_desc-attribution_relevance.tsv", sep="\t")
        assert rel["relevance"].sum() == pytest.approx(1.0) and set(rel["target"]) == {"region2"}
    att = pd.read_csv(out / "group" / "direction-eeg2fmri_model-topoattention_desc-attention_"
                      "matrix.tsv", sep="\t", index_col=0)
    assert np.allclose(att.sum(axis=1), 1.0, atol=1e-4)
    table = pd.DataFrame({"model": ["ridge"], "direction": ["eeg2fmri"], "fold": [0],
                          "mse": [1.0], "r": [0.1]})
    html = write_group_report(out, table, extra_sections=sections).read_text()
    assert "Classification: cohort" in html and "Attribution and attention" in html
    for key in ("classification", "attribution", "attention"):
        assert (out / "group" / "figures" / f"desc-{key}_group.svg").is_file(), key
    assert "drawing it failed" not in html
    bad = Config.from_sources({"bids_dir": bids, "output_dir": out, "classify": "diagnosis"})
    with pytest.raises(UsageError, match="no such column"):
        check_calhas(bad, {"eeg2fmri": data})
