"""fMRI→EEG: rnn-seq2seq vs ridge vs the noise ceiling, fine-tuning, single-region analysis.

Data: the fMRI→EEG generator of ``tests/fmri2eeg_sim.py`` (simulator sources and HRF; 5 subjects,
one run of ``--volumes`` TRs at 2 s; 5 GM regions + non-GM; 6 channels in 3 groups × 8
frequencies; R1 drives occipital alpha, R2 central beta, theta is an EEG-only distractor). The
seed's protocol at its default sizes: 50-TR windows, 5 centred TRs, 5-fold CV over subjects, then
per-subject fine-tuning on the first half of each held-out run and scoring after a 60-volume
buffer. Writes the ``## fMRI→EEG models`` section of ``docs/benchmarks.md`` with ``--write``.

    python benchmarks/fmri2eeg.py [--volumes 300] [--epochs 15] [--write]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fmri2eeg_sim import DRIVEN_CELLS, NON_GM, UNDRIVEN_CELLS, simulate  # noqa: E402

from bids_eeg2fmri.analysis.single_region import single_region_analysis  # noqa: E402
from bids_eeg2fmri.data.windows import SequenceSpec  # noqa: E402
from bids_eeg2fmri.training import TrainConfig  # noqa: E402
from bids_eeg2fmri.training.finetune import finetune_protocol  # noqa: E402
from bids_eeg2fmri.training import cross_validate  # noqa: E402

MODELS = ("ridge", "rnn-seq2seq")


def _ci(x: np.ndarray) -> float:
    return float(stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / np.sqrt(len(x)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs, spec, info = simulate(n_subjects=5, n_volumes=args.volumes, seed=0)
    window = SequenceSpec(window=args.window, horizon=5)
    cfg = TrainConfig(epochs=args.epochs, lr=5e-3, weight_decay=0.5, progress=False)
    kw = {"bands": info["bands"], "groups": info["groups"]}
    lines = [f"5 simulated subjects × {args.volumes} TRs (TR 2 s), window {window.window} TRs → "
             f"{window.horizon} centred TRs, 5-fold CV over subjects, {args.epochs} epochs "
             "(AdamW lr 5e-3, weight decay 0.5), one CPU thread. r = Pearson r of band power in "
             "its channel group over held-out TRs, mean over folds ± 95 % CI; ceiling = r of the "
             "noiseless with the measured band power.", "",
             "| model | r alpha·occipital (driven) | r beta·central (driven) | ceiling alpha / beta "
             "| r un-driven (max \\|r\\|) | r overall | MSE (z) | seconds |", "|---|---|---|---|---|---|---|---|"]
    for name in MODELS:
        t0 = time.perf_counter()
        cv = cross_validate(runs, spec, [name], direction="fmri2eeg", k=5, window=window,
                            train_config=cfg,
                            early_stopping=False, **kw)
        sec = time.perf_counter() - t0
        t = cv.table
        drv = [f"{t[f'r_{c}'].mean():.3f} ± {_ci(t[f'r_{c}'].to_numpy()):.3f}" for c in DRIVEN_CELLS]
        ceil = " / ".join(f"{t[f'ceiling_{c}'].mean():.3f}" for c in DRIVEN_CELLS)
        und = max(abs(t[f"r_{c}"].mean()) for c in UNDRIVEN_CELLS)
        lines.append(f"| `{name}` | {drv[0]} | {drv[1]} | {ceil} | {und:.3f} | "
                     f"{t['r_overall'].mean():.3f} | {t['mse'].mean():.3f} | {sec:.0f} |")
        print(lines[-1], flush=True)
    t0 = time.perf_counter()
    ft = finetune_protocol(runs, spec, MODELS, window=window, k=5, train_config=cfg, **kw)
    sec = time.perf_counter() - t0
    lines += ["", f"Fine-tuning (first half of each held-out run, {window.min_buffer(spec.tr)}-volume "
              f"buffer, scored on the rest; {sec:.0f} s for both models): mean over subjects of the "
              "driven cells' r.", "",
              "| model | subject | base | fine-tuned | gain |", "|---|---|---|---|---|"]
    for name in MODELS:
        sides = [ft.side_by_side(f"r_{c}").loc[name] for c in DRIVEN_CELLS]
        both = sum(sides) / len(sides)
        for subject, row in both.iterrows():
            lines.append(f"| `{name}` | {subject} | {row['base']:.3f} | {row['finetuned']:.3f} | "
                         f"{row['gain']:+.3f} |")
        lines.append(f"| `{name}` | **mean** | {both['base'].mean():.3f} | "
                     f"{both['finetuned'].mean():.3f} | {both['gain'].mean():+.3f} |")
    print("\n".join(lines[-14:]), flush=True)
    t0 = time.perf_counter()
    sr = single_region_analysis(runs, spec, non_gm=NON_GM, model="ridge", window=window, k=5,
                                bands=info["bands"], groups={"all": spec.channels}, workers=1)
    sec = time.perf_counter() - t0
    imp = sr.improvement()
    sig = sr.significant()
    lines += ["", f"Single-region analysis (`ridge`, non-GM + region vs non-GM, per band over all "
              f"channels, paired t-test across the 5 subjects, BH-FDR 0.05; {sec:.0f} s): mean Δr, "
              "`*` = significant.", "",
              "| region | " + " | ".join(imp.columns) + " |", "|---|" + "---|" * len(imp.columns)]
    for region, row in imp.iterrows():
        lines.append(f"| {region} | " + " | ".join(
            f"{v:+.3f}{'*' if sig.loc[region, c] else ''}" for c, v in row.items()) + " |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        path = ROOT / "docs" / "benchmarks.md"
        doc = path.read_text()
        section = ("## fMRI→EEG models\n\n`python benchmarks/fmri2eeg.py --write` "
                   "(`benchmarks/fmri2eeg.py`).\n\n" + text + "\n")
        # The hand-written "Reading:" paragraph after the tables survives a rewrite.
        pattern = re.compile(r"## fMRI→EEG models\n.*?(?=\nReading:|\n## |\Z)", re.S)
        doc = pattern.sub(lambda _: section.rstrip("\n") + "\n", doc) if pattern.search(doc) \
            else doc.rstrip("\n") + "\n\n" + section
        path.write_text(doc if doc.endswith("\n") else doc + "\n")


if __name__ == "__main__":
    main()
