"""fMRI→EEG: the poster's segment models vs one model's sliding windows, per held-out subject.

Data: the fMRI→EEG generator of ``tests/fmri2eeg_sim.py`` (5 subjects × ``--volumes`` TRs, subject-
specific haemodynamic delays). Base models train on 4 subjects; for the fifth,
:func:`~bids_eeg2fmri.training.segments.compare_segments` scores the base model and ``--segments``
models (each fine-tuned on the subject's samples outside its segment, buffered) on the same
samples. Prints a Markdown table for ``docs/benchmarks.md``.

    python benchmarks/segments.py [--volumes 300] [--segments 3] [--epochs 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fmri2eeg_sim import DRIVEN_CELLS, simulate  # noqa: E402

from bids_eeg2fmri.data.windows import SequenceSpec, index_samples  # noqa: E402
from bids_eeg2fmri.training import TrainConfig, fit  # noqa: E402
from bids_eeg2fmri.training.finetune import finetune_settings  # noqa: E402
from bids_eeg2fmri.training.segments import compare_segments  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=300)
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs, spec, info = simulate(n_subjects=5, n_volumes=args.volumes, seed=0)
    window = SequenceSpec(window=12, horizon=3)
    samples = index_samples(runs, window)
    cfg = TrainConfig(epochs=args.epochs, lr=5e-3, weight_decay=0.5, progress=False)
    print("| model | subject | MSE sliding | MSE segments | MSE train-mean | r driven sliding | "
          "r driven segments | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("ridge", "rnn-seq2seq"):
        for subject in sorted(set(samples["subject"])):
            t0 = time.perf_counter()
            test = np.flatnonzero(samples["subject"].to_numpy() == subject)
            base = fit(runs, spec, name, direction="fmri2eeg", window=window, samples=samples,
                       rows=np.setdiff1d(np.arange(len(samples)), test),
                       val_rows=np.empty(0, dtype=int), train_config=cfg)
            ev = compare_segments(base, runs, samples, test,
                                  finetune_settings(cfg, name, "fmri2eeg"), args.segments,
                                  bands=info["bands"], groups=info["groups"])
            r = {k: np.mean([e.metrics[f"r_{c}"] for c in DRIVEN_CELLS]) for k, e in ev.items()}
            print(f"| {name} | {subject} | {ev['sliding'].metrics['mse']:.3f} | "
                  f"{ev['segments'].metrics['mse']:.3f} | "
                  f"{ev['segments'].metrics['train_mean_mse']:.3f} | {r['sliding']:.3f} | "
                  f"{r['segments']:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
