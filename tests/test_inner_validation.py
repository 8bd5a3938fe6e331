"""Participant-wise inner validation (``--validation participant``, ``training/inner.py``): the deep
models early-stop and shrink on held-out *training participants*, never on the test participant."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

import _torch_threads  # noqa: F401  (one thread)
import eeg2fmri_sim
import fmri2eeg_sim

from bids_eeg2fmri.cli.run import main
from bids_eeg2fmri.config import Config
from bids_eeg2fmri.data.splits import validation_blocks
from bids_eeg2fmri.data.windows import SequenceSpec, WindowSpec, index_samples
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.group.card import validation_card
from bids_eeg2fmri.training import EEG2FMRI, FMRI2EEG, TrainConfig, core, cross_validate, fit
from bids_eeg2fmri.training.inner import median_epoch, participant_folds

WINDOW = WindowSpec(window=4)


def _data(n_subjects: int = 3, flip: str | None = None, seed: int = 0):
    runs, spec, _ = eeg2fmri_sim.simulate(n_subjects=n_subjects, n_volumes=120, target="regions",
                                          seed=seed)
    if flip is not None:
        # One participant's BOLD follows its EEG with the opposite sign to the others'.
        runs = [dataclasses.replace(r, bold=-r.bold, truth=-r.truth) if r.subject == flip else r
                for r in runs]
    return runs, spec


def _cfg(validation: str, **kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 15, "patience": 5, "progress": False, "weight_decay": 0.0,
                          "validation": validation, **kw})


def _weights(fitted) -> list[np.ndarray]:
    return [v.detach().numpy().copy() for v in fitted.model.state_dict().values()]


def test_inner_folds_never_hold_the_outer_test_participant(monkeypatch):
    runs, spec = _data(3)
    calls: list[tuple[int, np.ndarray, np.ndarray | None]] = []
    depth = [0]
    original = core.fit

    def spy(*args, rows=None, val_rows=None, **kw):
        calls.append((depth[0], np.asarray(rows), None if val_rows is None else
                      np.asarray(val_rows)))
        depth[0] += 1
        try:
            return original(*args, rows=rows, val_rows=val_rows, **kw)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(core, "fit", spy)
    cv = cross_validate(runs, spec, ["mlp"], direction=EEG2FMRI, regime="loso", window=WINDOW,
                        train_config=_cfg("participant", epochs=3, patience=0),
                        hparams={"mlp": {"hidden": 64}})
    subject = cv.samples["subject"].to_numpy()
    starts = [i for i, c in enumerate(calls) if c[0] == 0]
    assert len(starts) == 3 and len(calls) == 3 * (1 + 2)
    for fold, start in zip(cv.folds, starts):
        _, rows, val = calls[start]
        assert val is None
        test = set(np.flatnonzero(~np.isin(np.arange(len(subject)), rows)))
        assert test == set(fold.test)
        inner = calls[start + 1:start + 3]
        held_out = set()
        for _, inner_rows, inner_val in inner:
            used = set(inner_rows) | set(inner_val)
            assert used <= set(rows) and not used & test
            # Each inner fold validates on one whole training participant and trains on the rest.
            assert len(set(subject[inner_val])) == 1
            assert not set(subject[inner_rows]) & set(subject[inner_val])
            assert set(inner_rows) | set(inner_val) == set(rows)
            held_out |= set(subject[inner_val])
        assert held_out == set(subject[rows])
    fitted = original(runs, spec, "mlp", direction=EEG2FMRI, window=WINDOW,
                      rows=np.flatnonzero(subject != "01"),
                      train_config=_cfg("participant", epochs=3, patience=0))
    p = fitted.provenance
    assert p["validation"] == "participant" and p["n_val"] == 0
    assert [f["held_out"] for f in p["inner_folds"]] == ["sub-02", "sub-03"]
    assert p["inner_epochs"] == median_epoch([f["best_epoch"] for f in p["inner_folds"]], 3)
    assert validation_card(p)["InnerFolds"] == p["inner_folds"]


def test_fmri2eeg_validates_on_participants_through_the_same_core():
    # The held-out participant's EEG targets are normalised with its own statistics, as a test
    # participant's are; the training participants' normalisers do not gain it.
    runs, spec, _ = fmri2eeg_sim.simulate(n_subjects=3, n_volumes=90, seed=3)
    fitted = fit(runs, spec, "rnn-seq2seq", direction=FMRI2EEG,
                 window=SequenceSpec(window=10, horizon=2),
                 train_config=_cfg("participant", epochs=2, patience=0))
    p = fitted.provenance
    assert p["validation"] == "participant" and len(p["inner_folds"]) == 3
    assert all(np.isfinite(f["best_val_loss"]) for f in p["inner_folds"])
    assert "output_shrinkage_mean" not in p  # rnn-seq2seq is not shrinkable
    assert sorted(fitted.target_norm.stats) == ["01", "02", "03"]
    assert not fitted.target_norm.self_fitted


def test_participant_folds_and_the_median_epoch():
    runs, _ = _data(3)
    samples = index_samples(runs, WINDOW)
    rows = np.flatnonzero(samples["subject"].to_numpy() != "02")
    folds = participant_folds(samples, rows)
    assert [f.name for f in folds] == ["sub-01", "sub-03"]
    assert not participant_folds(samples, np.flatnonzero(samples["subject"].to_numpy() == "01"))
    assert median_epoch([2, 3], 30) == 3 and median_epoch([4, 1, 9], 30) == 4
    assert median_epoch([-1, -1], 12) == 12 and median_epoch([40], 30) == 30


def test_time_validation_is_the_buffered_time_blocks_as_before():
    runs, spec = _data(3)
    samples = index_samples(runs, WINDOW)
    kw = dict(direction=EEG2FMRI, window=WINDOW, samples=samples, hparams={"hidden": 64})
    default = fit(runs, spec, "mlp", train_config=_cfg("time"), **kw)
    # The pre-option path: the time blocks passed explicitly as the early-stopping rows.
    train, val = validation_blocks(samples, np.arange(len(samples)), WINDOW, spec.tr)
    explicit = fit(runs, spec, "mlp", rows=train, val_rows=val, train_config=_cfg("time"), **kw)
    for a, b in zip(_weights(default), _weights(explicit)):
        np.testing.assert_array_equal(a, b)
    assert default.provenance["validation"] == "time" and "inner_folds" not in default.provenance
    assert explicit.provenance["validation"] == "given"
    assert TrainConfig().validation == Config().group.validation == "time"
    participant = fit(runs, spec, "mlp", train_config=_cfg("participant"), **kw)
    assert any(not np.array_equal(a, b)
               for a, b in zip(_weights(default), _weights(participant)))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_participant_with_the_opposite_relation_shrinks_the_network(seed):
    def scale(validation, flip):
        runs, spec = _data(3, flip=flip, seed=seed)
        f = fit(runs, spec, "mlp", direction=EEG2FMRI, window=WINDOW,
                train_config=_cfg(validation), hparams={"hidden": 64})
        return f.provenance["output_shrinkage_mean"], f.provenance["best_epoch"]

    # Time blocks of all three participants still see the majority's relation; held-out
    # participants see that it does not carry over to a new one.
    (s_time, e_time), (s_part, e_part) = scale("time", "03"), scale("participant", "03")
    assert s_part < 0.5 * s_time, (s_part, s_time)
    assert e_part <= e_time, (e_part, e_time)
    # With every participant alike, participant validation shrinks no more than time blocks do.
    (c_time, _), (c_part, _) = scale("time", None), scale("participant", None)
    assert c_part > 0.8 * c_time, (c_part, c_time)


def test_fewer_than_two_training_participants_fall_back_to_time(caplog):
    runs, spec = _data(2)
    samples = index_samples(runs, WINDOW)
    one = np.flatnonzero(samples["subject"].to_numpy() == "01")
    kw = dict(direction=EEG2FMRI, window=WINDOW, samples=samples, rows=one)
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri"):
        fell = fit(runs, spec, "mlp", train_config=_cfg("participant", epochs=4), **kw)
    timed = fit(runs, spec, "mlp", train_config=_cfg("time", epochs=4), **kw)
    assert fell.provenance["validation"] == "time"
    assert "at least 2 training participants" in fell.provenance["validation_note"]
    assert "hold 1," in fell.provenance["validation_note"]
    assert any("at least 2 training participants" in r.getMessage() for r in caplog.records)
    card = validation_card(fell.provenance)
    assert card["Regime"] == "time" and "Note" in card
    for a, b in zip(_weights(fell), _weights(timed)):
        np.testing.assert_array_equal(a, b)
    assert validation_card(fit(runs, spec, "ridge", **kw).provenance) is None


def test_bad_validation_values_are_usage_errors(tmp_path, capsys):
    code = main([str(tmp_path / "missing"), str(tmp_path / "out"), "group",
                 "--validation", "blocks"])
    err = capsys.readouterr().err
    assert code == 64 and "--validation" in err and "Traceback" not in err
    with pytest.raises(UsageError, match="group.validation"):
        Config.from_sources({"validation": "blocks"})
    with pytest.raises(UsageError, match="validation"):
        TrainConfig(validation="blocks")
    assert TrainConfig.from_config(Config.from_sources({"validation": "participant"})
                                   ).validation == "participant"
