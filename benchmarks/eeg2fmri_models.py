"""Every EEG→fMRI model vs the two baselines vs the noise ceiling, leave-one-subject-out.

Data: the learning-core generator of ``tests/eeg2fmri_sim.py`` (4 subjects, 160 volumes, TR 2 s,
8 channels × 6 frequencies × 2 frames, 6×7×6 voxel grid with 4 regions, two of them driven by EEG
band-power sources through the canonical HRF). Prints a Markdown table of fold means; paste it into
the ``## EEG→fMRI models`` section of ``docs/benchmarks.md``.

    python benchmarks/eeg2fmri_models.py [--epochs 40] [--volumes 160] [--models unet ...]
                                         [--raw]

``--raw`` turns the generated spectrogram into raw EEG (``tests/raw_sim.py``: sinusoids whose band
power follows it, 64 Hz) and trains the raw-input variants (Siamese ``mlp``, 1-D ``cnn``,
``transformer`` with sinusoidal positions) on region targets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from eeg2fmri_sim import DRIVEN, UNDRIVEN, simulate  # noqa: E402

from bids_eeg2fmri.data.windows import WindowSpec  # noqa: E402
from bids_eeg2fmri.models import registry  # noqa: E402
from bids_eeg2fmri.training import TrainConfig, cross_validate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--volumes", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", help="default: every registered model")
    ap.add_argument("--raw", action="store_true", help="raw EEG input (see the docstring)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs, spec, _ = simulate(n_subjects=4, n_volumes=args.volumes,
                             target="regions" if args.raw else "voxels", seed=0)
    hparams = {}
    if args.raw:
        from raw_sim import to_raw

        runs, spec = to_raw(runs, spec)
        hparams = {"transformer": {"positions": "sinusoidal"}}
    window = WindowSpec(window=8, history=3)
    print("| model | MSE | train-mean MSE | subject-mean MSE | r driven (vs truth) | "
          "r driven (vs measured) | noise ceiling | r un-driven | SSIM | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models or registry.available():
        t0 = time.perf_counter()
        res = cross_validate(runs, spec, [name], regime="loso", window=window,
                             train_config=TrainConfig(epochs=args.epochs, patience=10),
                             hparams=hparams)
        m = res.table.mean(numeric_only=True)
        drv = lambda key: sum(m[key.format(k)] for k in DRIVEN) / len(DRIVEN)  # noqa: E731
        und = sum(m[f"model_r_region_{k}"] for k in UNDRIVEN) / len(UNDRIVEN)
        print(f"| {name} | {m.model_mse:.3f} | {m.train_mean_mse:.3f} | {m.subject_mean_mse:.3f} | "
              f"{drv('model_r_truth_region_{}'):.3f} | {drv('model_r_region_{}'):.3f} | "
              f"{drv('ceiling_region_{}'):.3f} | {und:+.3f} | "
              f"{m.get('model_ssim', float('nan')):.3f} | "
              f"{time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
