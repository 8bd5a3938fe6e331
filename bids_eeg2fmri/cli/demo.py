"""``bids-eeg2fmri-demo [OUT_DIR]``: simulate a small dataset and run the BIDS-App on it end to end."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from ..bids.validate import run_validator
from ..errors import ExitCode
from ..group.run import print_summary
from ..simulate.params import CONTROL_REGIONS, SOURCE_CATALOGUE
from . import run as app
from . import simulate

MARKER = ".bids_eeg2fmri_demo"
#: Paired participants, their volumes and the simulator's sources: small enough for ~5 minutes on
#: 2 cores, long enough (7 min of BOLD each) for the models to learn the coupling.
SUBJECTS, VOLUMES, SOURCES = 3, 200, 4
#: fMRI→EEG samples of 8 volumes in, 2 EEG TRs out: the seed's 50-TR window leaves too few
#: samples (and too many lagged inputs per sample) in runs this short.
FMRI2EEG_WINDOW = ["--window-trs", "8", "--horizon-trs", "2"]
#: Band power per channel and TR: the EEG→fMRI input (with 3 training participants, ~1000 inputs
#: per sample instead of ~27 000 STFT bins and frames) and the fMRI→EEG target (160 band cells
#: instead of ~1000 bins, most of which no source drives) (docs/benchmarks.md, *Demo*).
EEG_FEATURES = ["--eeg-features", "bands"]
#: Strong weight decay for the deep models: with 2 training participants per fold the default
#: 0.01 lets rnn-seq2seq fit noise (held-out MSE above the baselines); 2 lowers its MSE below
#: them and lifts its r on the driven cells from 0.31 to 0.39 (docs/benchmarks.md, *Demo*).
WEIGHT_DECAY = ["--weight-decay", "2"]
#: One ITK/BLAS thread per preprocessing process: ANTs' multi-threaded metrics sum in a
#: thread-dependent order, so with more threads the SyN registration (and every model score
#: downstream) changed from run to run of the same seed; with one it is bit-identical and, with
#: the participants' runs in parallel, no slower (docs/benchmarks.md, *Demo*).
PARTICIPANT_THREADS = ["--omp-nthreads", "1"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bids-eeg2fmri-demo",
                                description="Simulate a small EEG-fMRI dataset and run the pipeline "
                                            "on it: validation, indexing, participant and group levels.")
    p.add_argument("out_dir", nargs="?", type=Path, default=Path("demo_output"),
                   help="folder for the simulated dataset, derivatives and work files "
                        "(default: ./demo_output)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed")
    return p


def _step(number: int, total: int, text: str) -> float:
    print(f"[{number}/{total}] {text}", flush=True)
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code of the first failing step, else 0."""
    args = _parser().parse_args(argv)
    out: Path = args.out_dir.resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        print(f"bids-eeg2fmri-demo: error: {out}: folder exists and was not made by the demo; "
              "choose another folder", file=sys.stderr)
        return int(ExitCode.CANT_CREATE)
    bids_dir, deriv, work = out / "bids", out / "derivatives", out / "work"
    if bids_dir.exists():
        shutil.rmtree(bids_dir)  # the demo's own simulated data: simulate afresh
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    start = time.perf_counter()
    total = 6
    common = ["-w", str(work), "--random-seed", str(args.seed)]

    t = _step(1, total, f"simulating EEG-fMRI with gradient and BCG artifacts in {bids_dir}")
    code = simulate.main([str(bids_dir), "--seed", str(args.seed), "--subjects", str(SUBJECTS),
                          "--volumes", str(VOLUMES), "--sources", str(SOURCES),
                          "--eeg-only-subjects", "1", "--gradient-artifact", "--bcg", "--quiet"])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s")

    t = _step(2, total, "validating it with bids-validator-deno")
    result = run_validator(bids_dir)
    print(f"      {len(result.errors)} error(s), {len(result.warnings)} warning(s) "
          f"in {time.perf_counter() - t:.1f} s")
    if not result.ok:
        print(f"bids-eeg2fmri-demo: error: {result.summary()}", file=sys.stderr)
        return int(ExitCode.VALIDATION)

    t = _step(3, total, "participant level: fMRI and EEG preprocessing of every run")
    code = app.main([str(bids_dir), str(deriv), "participant", "--skip-bids-validation",
                     "--model-ready", *PARTICIPANT_THREADS, *common])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s")

    t = _step(4, total, "group level: leave-one-subject-out CV, ridge + one deep model per "
                        "direction, single-region analysis of the simulated regions")
    # The simulator's driven regions and its un-driven controls: the analysis should single out
    # each driven region in its source's band cell.
    regions = [s.region for s in SOURCE_CATALOGUE[:SOURCES]] + list(CONTROL_REGIONS)
    code = app.main([str(bids_dir), str(deriv), "group", "--cv", "loso", "--epochs", "30",
                     *FMRI2EEG_WINDOW, *EEG_FEATURES, *WEIGHT_DECAY, "--single-region",
                     "--single-region-regions", *regions,
                     *common])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s")

    table = _cv_table(deriv)
    best = _best_eeg2fmri(table)
    eeg_only = _eeg_only_participants(bids_dir)
    t = _step(5, total, f"applying the EEG→fMRI model '{best}' to the EEG-only participant(s) "
                        f"{', '.join('sub-' + s for s in eeg_only)}")
    code = app.main([str(bids_dir), str(deriv), "participant", "--skip-bids-validation",
                     "--participant-label", *eeg_only,
                     "--model-dir", str(deriv / "models" / "eeg2fmri" / best), *common])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s")

    _step(6, total, "summary")
    print("\nCross-validated scores (mean over held-out participants), baselines and noise ceiling:")
    print(print_summary(table))
    print("  r: held-out Pearson r over all targets (EEG→fMRI: atlas regions; fMRI→EEG: the band "
          "power of every channel);\n"
          "  r_driven: over the regions / band × channel-group cells the simulated sources drive;\n"
          "  ceiling: r of those targets' measurement with their noiseless signal (EEG→fMRI "
          "counts BOLD noise only:\n  the EEG's own noise keeps any model below it);\n"
          "  MSE vs train-mean (predict the training mean) and subj-mean (each test subject's "
          "own mean, an oracle).")
    synth = sorted(deriv.glob("sub-*/func/*_desc-synth_bold.nii.gz"))
    print(f"\nDemo finished in {time.perf_counter() - start:.1f} s.\n"
          f"  simulated dataset:  {bids_dir}\n"
          f"  ground truth:       {bids_dir / 'derivatives' / 'simulation'}\n"
          f"  derivatives:        {deriv}\n"
          f"  reports:            {', '.join(str(p) for p in sorted(deriv.glob('*.html')))}\n"
          f"  models:             {deriv / 'models'}\n"
          f"  single-region:      {deriv / 'group' / 'direction-fmri2eeg_desc-singleregion_stats.tsv'}\n"
          f"  synthesized BOLD:   {', '.join(str(p) for p in synth) or 'none'}")
    return 0


def _cv_table(deriv: Path) -> pd.DataFrame:
    """All per-fold metrics the group level wrote."""
    files = sorted((deriv / "group").glob("*_desc-cv_metrics.tsv"))
    return pd.concat([pd.read_csv(f, sep="\t", na_values="n/a") for f in files], ignore_index=True)


def _best_eeg2fmri(table: pd.DataFrame) -> str:
    """The EEG→fMRI model with the highest mean held-out r."""
    sub = table[table["direction"] == "eeg2fmri"]
    return str(sub.groupby("model")["r"].mean().idxmax())


def _eeg_only_participants(bids_dir: Path) -> list[str]:
    """Participants with EEG recordings and no BOLD."""
    return sorted(p.name[4:] for p in bids_dir.glob("sub-*")
                  if any(p.rglob("*_eeg.vhdr")) and not any(p.rglob("*_bold.nii.gz")))


if __name__ == "__main__":
    sys.exit(main())
