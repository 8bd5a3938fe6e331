"""``bids-eeg2fmri-demo [OUT_DIR]``: simulate a small dataset and run the BIDS-App on it end to end."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from ..bids.validate import run_validator
from ..errors import ExitCode
from . import run as app
from . import simulate

MARKER = ".bids_eeg2fmri_demo"


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
    total = 4

    t = _step(1, total, f"simulating a small EEG-fMRI dataset in {bids_dir}")
    code = simulate.main([str(bids_dir), "--seed", str(args.seed)])
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

    t = _step(3, total, "participant level: index, pair BOLD with EEG, plan")
    code = app.main([str(bids_dir), str(deriv), "participant", "-w", str(work),
                     "--skip-bids-validation"])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s")

    t = _step(4, total, "group level")
    code = app.main([str(bids_dir), str(deriv), "group", "-w", str(work)])
    if code:
        return code

    print(f"\nDemo finished in {time.perf_counter() - start:.1f} s.\n"
          f"  simulated dataset:  {bids_dir}\n"
          f"  ground truth:       {bids_dir / 'derivatives' / 'simulation'}\n"
          f"  derivatives:        {deriv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
