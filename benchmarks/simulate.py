"""Benchmark the simulator at demo and realistic size.

Usage::

    python benchmarks/simulate.py [--cases demo realistic] [--workdir DIR]

Each case runs in a fresh child process (so its peak RSS is its own) that simulates the dataset,
then writes the same number of bytes to a scratch file with fsync: the I/O floor, the time no
simulator could beat on this disk. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "demo": {},
    "realistic": {"preset": "realistic"},
}
DESCRIPTION = {
    "demo": "3 subj × 1 run, 40×40×24×100 BOLD, 32 ch @ 500 Hz",
    "realistic": "1 run, 64×64×30×300 BOLD, 64 ch @ 5 kHz, gradient + BCG",
}


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def io_floor(folder: Path, n_bytes: int, chunk: int = 8 << 20) -> float:
    """Seconds to write ``n_bytes`` (incompressible) to ``folder`` and fsync them."""
    block = os.urandom(chunk)
    path = folder / ".io_floor.bin"
    start = time.perf_counter()
    with open(path, "wb") as fh:
        left = n_bytes
        while left > 0:
            fh.write(block[: min(chunk, left)])
            left -= chunk
        fh.flush()
        os.fsync(fh.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def run_case(name: str, workdir: Path) -> dict:
    """Simulate one case in this process and return its measurements."""
    from bids_eeg2fmri.simulate import preset, simulate_dataset

    spec = dict(CASES[name])
    params = preset(spec.pop("preset", "demo"), **spec)
    out = workdir / f"bench-{name}"
    start = time.perf_counter()
    simulate_dataset(out, params, overwrite=True)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = _tree_bytes(out)
    floor = io_floor(workdir, size)
    shutil.rmtree(out)
    return {"case": name, "seconds": seconds, "peak_rss_gb": peak_kb / 1024 ** 2,
            "bytes": size, "io_floor_s": floor}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases, each in a child process, and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["demo", "realistic"])
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sim-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(run_case(args.child, workdir)))
        return 0
    rows = []
    for case in args.cases:
        proc = subprocess.run([sys.executable, __file__, "--child", case, "--workdir",
                               str(workdir)], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print("| case | size | seconds | peak RSS (GB) | output (MB) | I/O floor (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {DESCRIPTION[r['case']]} | {r['seconds']:.1f} | "
              f"{r['peak_rss_gb']:.2f} | {r['bytes'] / 1e6:.0f} | {r['io_floor_s']:.1f} |")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
