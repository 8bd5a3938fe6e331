"""Distributed (torchrun/DDP) training matches one process, and only rank 0 writes.

One script is run twice: as a plain single process with a batch of ``B``, and under
``torchrun --standalone --nproc_per_node=2`` (gloo on CPU) with ``B / 2`` per process. The
trainer's sharding makes the two processes' step-``k`` batches together exactly the single
process's step-``k`` batch (same permutation of the same seed), and DDP averages the two halves'
gradients, which is the full batch's gradient. Dropout is off, so nothing random separates the two
runs: what is left is floating-point summation order (the gradient all-reduce, losses summed over
differently split batches), float32 rounding that Adam carries through a few epochs. Measured here:
1.7e-9 relative in the held-out MSE. The tolerance, 1e-5 relative on losses and MSE and 1e-5
absolute on r, leaves room for other BLAS builds; anything that changes the optimisation is far
outside it: a per-rank sample order other than the single process's moved the first epoch's
training loss by 1 %, and DDP without gradient synchronisation by 1e-3 in the first epoch and 4 %
by the third.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
BATCH = 16

SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    from dataclasses import replace
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import _torch_threads  # one thread per process: the machine is shared
    import numpy as np
    import torch
    from bids_eeg2fmri.data.windows import WindowSpec, index_samples
    from bids_eeg2fmri.training import TrainConfig, evaluate, fit
    from bids_eeg2fmri.training import distributed as D
    from eeg2fmri_sim import simulate

    # Every rank gets its own output folder: a file in rank1/ would show that rank 1 wrote.
    out = Path(sys.argv[1]) / f"rank{{D.rank()}}"
    batch = int(sys.argv[2])
    win = WindowSpec(window=4, history=2)
    runs, spec, _ = simulate(n_subjects=3, n_volumes=70, target="voxels", seed=1)
    samples = index_samples(runs, win)
    test = np.flatnonzero(samples["subject"] == "03")
    train = np.flatnonzero(samples["subject"] != "03")
    cfg = TrainConfig(epochs=6, batch_size=batch, patience=2, seed=5, device="cpu", progress=False)

    def mlp(name, epochs, resume=False):
        return fit(runs, spec, "mlp", window=win, samples=samples, rows=train,
                   hparams={{"dropout": 0.0, "hidden": 64}},
                   train_config=replace(cfg, epochs=epochs), out_dir=out / name, resume=resume)

    def digest(model):
        h = hashlib.sha1()
        for v in model.state_dict().values():
            h.update(v.detach().cpu().numpy().tobytes())
        return h.hexdigest()

    whole = mlp("whole", 6)
    ev = evaluate(whole, runs, samples=samples, rows=test, device="cpu")
    # Resume: 3 epochs, then on to 6 from the checkpoint, must give the uninterrupted weights.
    mlp("part", 3)
    resumed = mlp("part", 6, resume=True)
    # A model that changes phase (autoencoder pretraining, then frozen) under DDP.
    tcnn = fit(runs, spec, "transformer-cnn", window=win, samples=samples, rows=train,
               hparams={{"pretrain_epochs": 1, "d_model": 16, "ff": 32, "latent": 8, "filters": 4,
                         "encoder_layers": 1, "decoder_layers": 1}},
               train_config=replace(cfg, epochs=2, patience=0), out_dir=out / "tcnn")
    print("RESULT " + json.dumps({{
        "rank": D.rank(), "world": D.world_size(),
        "mse": ev.metrics["model_mse"], "r": ev.metrics["model_r_temporal"],
        "history": whole.history, "best_epoch": whole.provenance["best_epoch"],
        "weights": digest(whole.model), "resumed": digest(resumed.model),
        "resumed_from": resumed.provenance["resumed_from_epoch"],
        "tcnn": digest(tcnn.model),
        "tcnn_finite": bool(all(torch.isfinite(p).all() for p in tcnn.model.parameters()))}}),
        flush=True)
""")


def _run(cmd: list[str], timeout: float) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # the single-process run must not think it is distributed
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = [json.loads(line.split("RESULT ", 1)[1]) for line in proc.stdout.splitlines()
            if line.startswith("RESULT ")]
    return sorted(rows, key=lambda r: r["rank"])


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_two_process_ddp_matches_one_process_and_only_rank0_writes(tmp_path):
    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    one_out, two_out = tmp_path / "one", tmp_path / "two"
    [one] = _run([sys.executable, str(script), str(one_out), str(BATCH)], timeout=240)
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", str(script), str(two_out), str(BATCH // 2)], timeout=240)

    assert one["world"] == 1
    assert [r["rank"] for r in ddp] == [0, 1] and {r["world"] for r in ddp} == {2}
    # DDP keeps the replicas identical: same weights on both ranks, also after the phase change.
    assert ddp[0]["weights"] == ddp[1]["weights"]
    assert ddp[0]["tcnn"] == ddp[1]["tcnn"] and ddp[0]["tcnn_finite"]
    # Same validation loss on every rank, hence the same early-stopping epoch.
    assert ddp[0]["best_epoch"] == ddp[1]["best_epoch"]
    assert [h["val_loss"] for h in ddp[0]["history"]] == [h["val_loss"] for h in ddp[1]["history"]]

    # 2 processes × B/2 against 1 process × B: the same optimisation up to rounding.
    two = ddp[0]
    assert two["best_epoch"] == one["best_epoch"]
    assert len(two["history"]) == len(one["history"])
    for a, b in zip(two["history"], one["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert two["mse"] == pytest.approx(one["mse"], rel=1e-5)
    assert two["r"] == pytest.approx(one["r"], abs=1e-5)
    print(f"held-out MSE 1 process {one['mse']:.8f}, 2 processes {two['mse']:.8f} "
          f"(rel. diff {abs(two['mse'] - one['mse']) / one['mse']:.2e}); "
          f"r {one['r']:.6f} vs {two['r']:.6f}")

    # Resume under DDP continues exactly (same number of processes), as in one process.
    for r in ddp + [one]:
        assert r["resumed_from"] == 2 and r["resumed"] == r["weights"]

    # Only rank 0 wrote: checkpoints, loss logs and models of all three fits, nothing from rank 1.
    expected = {f"{name}/{f}" for name in ("whole", "part", "tcnn")
                for f in ("checkpoint.pt", "losses.tsv", "model.safetensors")}
    assert _files(two_out / "rank0") == expected
    assert not (two_out / "rank1").exists()
    assert _files(one_out / "rank0") == expected
