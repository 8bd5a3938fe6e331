"""Training throughput (samples/s) and peak memory of every EEG→fMRI model, CPU and CUDA.

Each model trains for a fixed number of AdamW steps on random data of a realistic-but-small shape
(window 10 TRs × 32 channels × 20 frequencies × 2 frames → a 12×14×12 grid, 2016 voxels), in a
fresh subprocess so that peak resident memory (CPU) belongs to that model alone; on CUDA the peak is
``torch.cuda.max_memory_allocated``. ``ridge`` is timed as one closed-form fit with inner CV.

    python benchmarks/train_throughput.py [--steps 20] [--batch-size 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

SHAPE = dict(window=10, n_channels=32, n_freqs=20, n_frames=2)
GRID = (12, 14, 12)


def _one(name: str, device: str, steps: int, batch: int, threads: int) -> dict:
    from bids_eeg2fmri.models import registry
    from bids_eeg2fmri.models.base import ModelShape

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    grid = np.ones(GRID, bool)
    shape = ModelShape(**SHAPE, n_targets=int(grid.sum()), grid=grid, history=3)
    model = registry.build(name, shape).to(device)
    dev = torch.device(device)
    x = torch.randn(batch, *[SHAPE[k] for k in ("window", "n_channels", "n_freqs", "n_frames")],
                    device=dev)
    b = {"x": x, "y": torch.randn(batch, shape.n_targets, device=dev),
         "y_hist": torch.randn(batch, 3, shape.n_targets, device=dev)}
    if registry.entry(name).closed_form:
        n = 50 * batch
        xs = np.random.default_rng(0).normal(size=(n, *x.shape[1:])).astype(np.float32)
        ys = np.random.default_rng(1).normal(size=(n, shape.n_targets)).astype(np.float32)
        folds = [(np.arange(n) % 4 != k, np.arange(n) % 4 == k) for k in range(4)]
        folds = [(np.flatnonzero(a), np.flatnonzero(t)) for a, t in folds]
        t0 = time.perf_counter()
        model.fit_closed_form(xs, ys, folds)
        secs, samples = time.perf_counter() - t0, n
    else:
        model.set_epoch(10 ** 6)  # the main training phase
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        dtype = (torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else None)
        for i in range(steps + 2):  # two warm-up steps
            if i == 2:
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                loss = model.training_loss(b)
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        secs, samples = time.perf_counter() - t0, steps * batch
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"model": name, "device": device, "samples_per_s": samples / secs, "peak_mib": peak,
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_one(*args.child, args.steps, args.batch_size, args.threads)))
        return
    from bids_eeg2fmri.models import registry

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"shape: window {SHAPE['window']} × {SHAPE['n_channels']} ch × {SHAPE['n_freqs']} freqs × "
          f"{SHAPE['n_frames']} frames → grid {GRID}; batch {args.batch_size}; "
          f"{args.threads} CPU threads; torch {torch.__version__}")
    print("| model | device | params | samples/s | peak memory (MiB) |")
    print("|---|---|---|---|---|")
    for device in devices:
        for name in registry.available():
            out = subprocess.run([sys.executable, __file__, "--child", name, device,
                                  "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                                  "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            kind = "RSS" if device == "cpu" else "CUDA alloc"
            print(f"| {name} | {device} | {r['params']:,} | {r['samples_per_s']:.0f} | "
                  f"{r['peak_mib']:.0f} ({kind}) |", flush=True)


if __name__ == "__main__":
    main()
