"""Benchmark of the fMRI preprocessing stages on a simulated realistic run.

Usage::

    python benchmarks/fmri_preproc.py [--volumes 300] [--registration syn] [--hmc torch] [--procs 2]
                                      [--json out.json]

Simulates one run (64×64×30 at 3.3×3.3×4 mm, TR 2.16 s; EEG kept tiny because only the BOLD is
used), then runs the same stage functions the workflow's nodes run, timing each, and measures in
the same process the I/O floor: reading the input series and writing outputs of the same size with
the same writers. Prints seconds per stage, the peak resident memory of this process and of its
worker processes, and the ratio of the total to the I/O floor.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0) so the simulation does not count."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_gb() -> tuple[float, float]:
    """Peak RSS (GB) of this process since the reset and of the largest finished child (HMC
    workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    return own, children


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the resampling and
    ANTs workers): less sensitive to the machine's load than wall-clock seconds."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class _TreeRSS:
    """Peak resident memory (GB) of this process and all its workers together, sampled in a
    thread (the per-process peaks alone cannot say whether they coincided)."""

    def __init__(self, every: float = 0.2) -> None:
        import threading

        sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
        from participant_level import tree_rss_bytes

        self._measure, self.peak, self._every = tree_rss_bytes, 0, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            self.peak = max(self.peak, self._measure(os.getpid()))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak / 1e9


def io_floor(bold: Path, res_dir: Path, boldref: Path, out_dir: Path) -> float:
    """Seconds to read the input series and write outputs as large as the stage writes."""
    from bids_eeg2fmri.fmri.io import write_masked_series

    t0 = time.perf_counter()
    img = nib.load(bold)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    mask = np.asarray(nib.load(res_dir / "brain_mask.nii.gz").dataobj) > 0
    values = np.ones((int(mask.sum()), data.shape[-1]), dtype=np.float32)
    values *= np.linspace(0.5, 1.5, values.shape[0], dtype=np.float32)[:, None]
    write_masked_series(out_dir / "floor_bold.nii.gz", values, mask,
                        nib.load(res_dir / "brain_mask.nii.gz").affine, 2.16)
    nib.save(nib.load(boldref), out_dir / "floor_boldref.nii.gz")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--registration", default="syn", choices=("syn", "syn-quick", "affine"))
    parser.add_argument("--hmc", default="torch", choices=("torch", "ants"))
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--hmc-threads", type=int, default=None,
                        help="head-motion threads/processes (default: as the workflow, 1 for "
                             "torch, --procs for ants)")
    parser.add_argument("--output-res", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)

    from bids_eeg2fmri.fmri import stages
    from bids_eeg2fmri.simulate import SimulationParams, simulate_dataset

    root = Path(tempfile.mkdtemp(prefix="fmribench-", dir=args.workdir))
    t0 = time.perf_counter()
    result = simulate_dataset(root / "bids", SimulationParams(
        subjects=1, volumes=args.volumes, grid=(64, 64, 30), voxel_size=(3.3, 3.3, 4.0),
        channels=4, sfreq=250.0, seed=1))
    sim_s = time.perf_counter() - t0
    bold = Path(result.runs[0].bold)
    print(f"simulated {bold.name} in {sim_s:.1f} s (not counted)", flush=True)
    if not _reset_peak_rss():
        print("warning: cannot reset the peak RSS; it includes the simulation", flush=True)

    dirs = {k: root / k for k in ("prep", "hmc", "reg", "res", "floor")}
    for d in dirs.values():
        d.mkdir()
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        t, c = time.perf_counter(), _cpu_seconds()
        out = fn(*a, **kw)
        times[name] = time.perf_counter() - t
        cpu[name] = _cpu_seconds() - c
        print(f"{name:<28s}{times[name]:8.1f} s {cpu[name]:8.1f} CPU s", flush=True)
        return out

    stc = dirs["prep"] / "stc.nii"
    load_start = os.getloadavg()[0]
    tree_peak = _TreeRSS()
    info = timed("dummy scans + slice timing", stages.prepare, bold, stc)
    hm = timed("head motion (boldref + HMC)", stages.head_motion, bold, dirs["hmc"],
               n_procs=args.hmc_threads or (1 if args.hmc == "torch" else args.procs),
               skip=info["dummy_scans"], method=args.hmc)
    reg = timed(f"registration ({args.registration})", stages.register, hm["boldref"],
                hm["boldref_mask"], dirs["reg"], method=args.registration)
    res = timed("resample + mask + write", stages.resample, stc, hm["hmc_xfm"], reg["field"],
                dirs["res"], output_res=args.output_res, n_procs=args.procs,
                n_non_steady=info["dummy_scans"])
    timed("confounds", stages.confounds, hm["motion_params"], res["dvars"], dirs["res"],
          res["tissue"], res["tissue_meta"], n_non_steady=info["dummy_scans"])
    total = sum(times.values())
    c = _cpu_seconds()
    floor = io_floor(bold, dirs["res"], Path(hm["boldref"]), dirs["floor"])
    floor_cpu = _cpu_seconds() - c
    load = os.getloadavg()[0]
    own, children = _peak_rss_gb()
    tree = tree_peak.stop()
    total_cpu = sum(cpu.values())
    print(f"{'total':<28s}{total:8.1f} s {total_cpu:8.1f} CPU s")
    print(f"{'I/O floor (read + write)':<28s}{floor:8.1f} s {floor_cpu:8.1f} CPU s   "
          f"total / floor = {total / floor:.1f} (CPU: {total_cpu / floor_cpu:.1f})")
    print(f"load average: {load_start:.1f} at the start, {load:.1f} at the end")
    print(f"peak RSS: main {own:.2f} GB, largest worker {children:.2f} GB, "
          f"whole process tree (sampled every 0.2 s) {tree:.2f} GB")
    print(f"dummy scans detected: {info['dummy_scans']}; mask voxels {res['mask_voxels']}")
    report = {"volumes": args.volumes, "grid": [64, 64, 30], "registration": args.registration,
              "hmc": args.hmc,
              "procs": args.procs, "stages_s": times, "stages_cpu_s": cpu, "total_s": total,
              "total_cpu_s": total_cpu, "io_floor_s": floor, "io_floor_cpu_s": floor_cpu,
              "ratio": total / floor, "load_start": load_start, "load_end": load, "peak_rss_gb": own, "peak_rss_worker_gb": children,
              "peak_rss_tree_gb": tree,
              "dummy_scans": info["dummy_scans"]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
