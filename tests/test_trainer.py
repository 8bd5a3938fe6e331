"""Trainer: kill-and-resume, checkpoints that carry what applying a model needs, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import _torch_threads  # noqa: F401
import numpy as np
import pandas as pd
import pytest
import torch

from bids_eeg2fmri.data.windows import DataSpec, WindowSpec
from bids_eeg2fmri.errors import DataError, UsageError
from bids_eeg2fmri.training import TrainConfig, evaluate, fit, load_model
from bids_eeg2fmri.training.trainer import resolve_device
from eeg2fmri_sim import simulate

WIN = WindowSpec(window=4, history=2)
TESTS = Path(__file__).resolve().parent


def _data(**kw):
    return simulate(n_subjects=2, n_volumes=70, target="voxels", seed=1, **kw)[:2]


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import _torch_threads
    from bids_eeg2fmri.data.windows import WindowSpec
    from bids_eeg2fmri.training import TrainConfig, fit
    from eeg2fmri_sim import simulate
    runs, spec = simulate(n_subjects=2, n_volumes=70, target="voxels", seed=1)[:2]
    def die(epoch, row):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flushing: a real kill
    fit(runs, spec, {model!r}, window=WindowSpec(window=4, history=2),
        train_config=TrainConfig(epochs=4, patience=0, seed=7), out_dir={out!r}, on_epoch_end=die,
        hparams={hparams!r})
""")


@pytest.mark.parametrize("model,hparams", [("mlp", {}), ("transformer-cnn", {"pretrain_epochs": 2})])
def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path, model, hparams):
    runs, spec = _data()
    cfg = TrainConfig(epochs=4, patience=0, seed=7)
    whole = fit(runs, spec, model, window=WIN, train_config=cfg, out_dir=tmp_path / "whole",
                hparams=hparams)
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(TESTS), model=model, out=str(out), hparams=hparams)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoint.pt").exists() and not (out / "model.safetensors").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no stray temporaries
    resumed = fit(runs, spec, model, window=WIN, train_config=cfg, out_dir=out, resume=True,
                  hparams=hparams)
    assert resumed.provenance["resumed_from_epoch"] == 1
    assert _same(_weights(whole.model), _weights(resumed.model))
    losses = pd.read_csv(out / "losses.tsv", sep="\t")
    assert losses["epoch"].tolist() == [1, 2, 3, 4]
    assert np.allclose(losses["train_loss"], [h["train_loss"] for h in whole.history])


def test_checkpoint_roundtrip_and_application_checks(tmp_path):
    runs, spec = _data()
    fitted = fit(runs, spec, "cnn", window=WIN, train_config=TrainConfig(epochs=2),
                 out_dir=tmp_path)
    loaded = load_model(tmp_path / "model.safetensors")
    assert loaded.data_spec.channels == spec.channels
    assert np.array_equal(loaded.data_spec.mask, spec.mask)
    assert np.allclose(loaded.data_spec.affine, spec.affine)
    assert loaded.provenance["subjects"] == ["01", "02"] and "train_config" in loaded.provenance
    assert set(loaded.input_norm.stats) == {"01", "02"}
    assert np.allclose(fitted.predict(runs), loaded.predict(runs, spec))
    # a new, EEG-only style subject: normalised from its own EEG, scored without retraining
    new_runs, new_spec = simulate(n_subjects=1, n_volumes=50, target="voxels", seed=9)[:2]
    new_runs[0].subject = "99"
    ev = evaluate(tmp_path / "model.safetensors", new_runs, new_spec)
    assert np.isfinite(ev.metrics["model_mse"]) and "model_ssim_brain" in ev.metrics

    renamed = DataSpec.from_dict({**spec.to_dict(), "channels": ["X1"] + spec.channels[1:]})
    with pytest.raises(DataError, match="EEG channels differ.*missing \\['E1'\\]"):
        loaded.predict(runs, renamed)
    shifted = DataSpec.from_dict({**spec.to_dict(), "frequencies": [f + 1 for f in spec.frequencies]})
    with pytest.raises(DataError, match="frequencies differ"):
        loaded.predict(runs, shifted)
    mask = spec.mask.copy()
    mask[0, 0, 0] = not mask[0, 0, 0]
    other_grid = DataSpec(spec.channels, spec.frequencies, spec.n_frames, spec.tr, "voxels",
                          int(mask.sum()), mask=mask, affine=spec.affine)
    with pytest.raises(DataError, match="grid"):
        loaded.predict(runs, other_grid)
    moved = DataSpec.from_dict({**spec.to_dict(), "affine": (spec.affine + np.eye(4)).tolist()})
    with pytest.raises(DataError, match="affine"):
        loaded.predict(runs, moved)
    with pytest.raises(DataError, match="cannot read model checkpoint"):
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        load_model(tmp_path / "junk.pt")


def test_nan_inputs_are_refused_with_the_volume(tmp_path):
    runs, spec = _data()
    runs[1].eeg[30, 2, 1, 0] = np.nan
    with pytest.raises(DataError, match="sub-02_run-1: EEG holds NaN.*volume 30"):
        fit(runs, spec, "ridge", window=WIN)
    runs, spec = _data()
    runs[0].bold[40, 5] = np.inf
    with pytest.raises(DataError, match="sub-01_run-1: BOLD holds NaN or infinite.*volume 40"):
        fit(runs, spec, "mlp", window=WIN, train_config=TrainConfig(epochs=1))


def test_training_log_device_and_config_checks(tmp_path):
    runs, spec = _data()
    fitted = fit(runs, spec, "mlp", window=WIN, train_config=TrainConfig(epochs=3, patience=0),
                 out_dir=tmp_path)
    log = pd.read_csv(tmp_path / "losses.tsv", sep="\t")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert len(log) == 3 and fitted.provenance["device"] == str(resolve_device("auto"))
    assert fitted.provenance["best_epoch"] in (1, 2, 3)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(UsageError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(UsageError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(UsageError, match="different --random-seed"):
        fit(runs, spec, "mlp", window=WIN, train_config=TrainConfig(epochs=4, seed=5),
            out_dir=tmp_path, resume=True)
