"""``bids-eeg2fmri-simulate OUT_DIR [options]``: write a simulated EEG-fMRI BIDS dataset.

Without options it writes the demo size (3 participants, 1 run, 100 volumes on a small EPI grid,
32 EEG channels at 500 Hz). ``--preset realistic`` gives one 64×64×30×300 run with 64 channels
at 5 kHz and both MR artifacts; any option given explicitly overrides the preset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError, UserError
from ..simulate.params import PRESETS, SLICE_ORDERS, preset

PROG = "bids-eeg2fmri-simulate"


class _Parser(argparse.ArgumentParser):
    """Argument errors become :class:`UsageError` (exit 64, one line) instead of exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser; option defaults are ``None`` so presets can fill them."""
    p = _Parser(prog=PROG, description="Simulate a BIDS dataset of simultaneous EEG-fMRI with "
                "its ground truth under derivatives/simulation.",
                argument_default=None)
    p.add_argument("out_dir", type=Path, help="folder to create (must be absent or empty)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                   help="starting point for all options (default: demo)")
    p.add_argument("--demo", dest="preset", action="store_const", const="demo",
                   help="same as --preset demo")
    p.add_argument("--overwrite", action="store_true", default=False,
                   help="replace a non-empty OUT_DIR")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress lines")
    g = p.add_argument_group("participants")
    g.add_argument("--subjects", type=int, help="participants with EEG and fMRI (demo: 3)")
    g.add_argument("--eeg-only-subjects", type=int, help="extra participants with EEG only")
    g.add_argument("--fmri-only-subjects", type=int, help="extra participants with fMRI only")
    g.add_argument("--sessions", type=int, help="sessions each (1 = no ses entity)")
    g.add_argument("--runs", type=int, help="runs per session")
    g = p.add_argument_group("BOLD")
    g.add_argument("--volumes", type=int, help="volumes per run, dummy scans included")
    g.add_argument("--grid", type=int, nargs=3, metavar=("X", "Y", "Z"),
                   help="EPI matrix; slices along Z")
    g.add_argument("--voxel-size", type=float, nargs=3, metavar=("X", "Y", "Z"),
                   help="EPI voxel size in mm")
    g.add_argument("--tr", type=float, help="repetition time in s (default 2.16)")
    g.add_argument("--acquisition-time", type=float,
                   help="time taken by the slices of one volume (default: the TR)")
    g.add_argument("--slice-order", choices=SLICE_ORDERS, help="default interleaved")
    g.add_argument("--multiband-factor", type=int, help="slices per shot (multiband order)")
    g.add_argument("--dummy-scans", type=int, help="volumes with saturation overshoot (3)")
    g.add_argument("--snr", type=float, help="grey-matter baseline / thermal noise SD (80)")
    g.add_argument("--motion-scale", type=float, help="head-motion multiplier (1; 0 = still)")
    g.add_argument("--truth-resolution", type=int,
                   help="voxel size (mm) of the MNI-space noiseless BOLD (4)")
    g = p.add_argument_group("sources and EEG")
    g.add_argument("--sources", type=int, help="latent sources, 1–8 (4)")
    g.add_argument("--channels", type=int, help="EEG channels (demo 32)")
    g.add_argument("--sfreq", type=float, help="EEG sampling rate in Hz (demo 500)")
    g.add_argument("--line-freq", type=float, help="power-line frequency (50)")
    g.add_argument("--gradient-artifact", action="store_true", help="add the MR gradient artifact")
    g.add_argument("--bcg", action="store_true", help="add the BCG artifact and an ECG channel")
    g.add_argument("--volume-marker", help="volume trigger name (R128 → Response/R128; "
                                           "'Scan Start'; or Type/Description)")
    g.add_argument("--group-effect", type=float,
                   help="0–1: every second participant is a 'patient' (participants.tsv column "
                        "cohort) whose first source is coupled 1 − this as strongly (default 0: "
                        "no cohorts)")
    g.add_argument("--seed", type=int, help="random seed (0)")
    return p


_FIELDS = ("subjects", "eeg_only_subjects", "fmri_only_subjects", "sessions", "runs",
           "volumes", "tr", "acquisition_time", "slice_order", "multiband_factor", "dummy_scans",
           "snr", "motion_scale", "truth_resolution", "sources", "channels", "sfreq", "line_freq",
           "volume_marker", "group_effect", "seed")


def params_from_args(args: argparse.Namespace) -> Any:
    """Turn parsed arguments into validated :class:`SimulationParams`."""
    overrides: dict[str, Any] = {k: getattr(args, k) for k in _FIELDS
                                 if getattr(args, k) is not None}
    if args.grid is not None:
        overrides["grid"] = tuple(args.grid)
    if args.voxel_size is not None:
        overrides["voxel_size"] = tuple(args.voxel_size)
    if args.gradient_artifact:
        overrides["gradient_artifact"] = True
    if args.bcg:
        overrides["bcg"] = True
    if args.slice_order == "multiband" and args.multiband_factor is None:
        overrides["multiband_factor"] = 2
    return preset(args.preset, **overrides).validate()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator; return 0, or the exit code of a user error (64 for bad options)."""
    from ..simulate.dataset import simulate_dataset

    try:
        args = build_parser().parse_args(argv)
        params = params_from_args(args)
        start = time.perf_counter()

        def progress(msg: str) -> None:
            if not args.quiet:
                print(f"{PROG}: {msg} ({time.perf_counter() - start:.1f} s)", flush=True)

        result = simulate_dataset(args.out_dir, params, overwrite=args.overwrite,
                                  progress=progress)
    except UserError as exc:
        print(f"{PROG}: error: {exc.oneline()}", file=sys.stderr)
        return int(exc.code)
    if not args.quiet:
        print(f"{PROG}: wrote {len(result.runs)} run(s) of {len(result.participants)} "
              f"participant(s) to {result.bids_dir} in {time.perf_counter() - start:.1f} s; "
              f"ground truth in {result.truth_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
