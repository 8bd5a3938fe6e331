"""Benchmark of the whole participant level on one realistic run: seconds, peak RSS, I/O floor.

Default: one simulated participant with a 64×64×30×300 BOLD run (TR 2.16 s) and 64-channel EEG at
5 kHz with MR gradient and BCG artifacts, simulated in a child process. The BIDS-App then runs the
participant level on it in another child process (as a user runs it), and the table reports its
wall-clock time, the peak resident memory of the app and all its workers (summed over the process
tree, sampled every 0.5 s), and the I/O floor: reading every input file and writing the same
number of output bytes, measured in the same run, and the CPU seconds (user + system) of the app
and its workers. Targets (2 cores): ≤ 120 s (issue 18), ≤ 4 GB.

Usage::

    python benchmarks/participant_level.py [--data BIDS_DIR] [--volumes 300] [--channels 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIM_CODE = """
import sys
from bids_eeg2fmri.simulate import simulate_dataset
from bids_eeg2fmri.simulate.params import preset
simulate_dataset(sys.argv[1], preset("realistic", subjects=1, volumes={volumes}, channels={channels},
                                     gradient_artifact=True, bcg=True, seed=1))
"""


def tree_rss_bytes(pid: int, cpu: dict[int, float] | None = None) -> int:
    """Resident memory of a process and all its descendants, from /proc (Linux).

    With ``cpu``, also record each tree process's own user + system seconds under its pid: summed
    over pids at the end, this is the CPU time of a tree whose workers the benchmark cannot wait
    for itself (up to one sampling interval is lost per process that exits between samples).
    """
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, pages = int(fields[1]), int(fields[21])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
        ticks[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        if cpu is not None and p in ticks:
            cpu[p] = max(cpu.get(p, 0.0), ticks[p])
        stack.extend(children.get(p, []))
    return total


def io_floor(inputs: list[Path], out_bytes: int, scratch: Path) -> float:
    """Seconds to read every input file and write ``out_bytes`` bytes (fsynced)."""
    start = time.perf_counter()
    for path in inputs:
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                continue
    chunk = b"\0" * (1 << 24)
    with open(scratch / "io_floor.bin", "wb") as fh:
        left = out_bytes
        while left > 0:
            fh.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    (scratch / "io_floor.bin").unlink()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Simulate (unless ``--data``), run the participant level, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="existing BIDS dataset (skips simulation)")
    ap.add_argument("--volumes", type=int, default=300)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--nprocs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="plevel-bench-") as tmp:
        tmp = Path(tmp)
        data = args.data
        sim_s = 0.0
        if data is None:
            data = tmp / "bids"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", SIM_CODE.format(volumes=args.volumes,
                                                                  channels=args.channels),
                            str(data)], check=True)
            sim_s = time.perf_counter() - t
        out, work = tmp / "out", tmp / "work"
        cmd = [sys.executable, "-m", "bids_eeg2fmri.cli.run", str(data), str(out), "participant",
               "-w", str(work), "--skip-bids-validation", "--nprocs", str(args.nprocs)]
        load_start = os.getloadavg()[0]
        cpu: dict[int, float] = {}
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss_bytes(proc.pid, cpu))
            time.sleep(0.5)
        total_s = time.perf_counter() - t
        # User + system seconds of the app and its workers (sampled, see tree_rss_bytes): less
        # sensitive to the machine's load than the wall-clock time.
        cpu_s = sum(cpu.values())
        if proc.returncode:
            print(proc.stderr.read()[-3000:], file=sys.stderr)
            return proc.returncode
        inputs = [p for p in data.rglob("*") if p.is_file() and "derivatives" not in p.parts]
        outputs = [p for p in out.rglob("*") if p.is_file()]
        out_bytes = sum(p.stat().st_size for p in outputs)
        floor = io_floor(inputs, out_bytes, tmp)
        load = os.getloadavg()[0]

    print(f"participant level, 1 run ({args.volumes} volumes, {args.channels} EEG channels at 5 kHz, "
          f"gradient + BCG), {args.nprocs} processes, load average {load_start:.1f} at the start, "
          f"{load:.1f} at the end")
    print(f"{'what':<34}{'seconds':>10}{'peak RSS GB':>14}")
    if sim_s:
        print(f"{'simulation (not counted)':<34}{sim_s:>10.1f}{'':>14}")
    print(f"{'participant level (whole app)':<34}{total_s:>10.1f}{peak / 1e9:>14.2f}")
    print(f"{'  CPU seconds (user + sys)':<34}{cpu_s:>10.1f}")
    print(f"{'I/O floor (read inputs, write outputs)':<34}{floor:>10.1f}{'':>14}")
    print(f"{'total / I/O floor':<34}{total_s / max(floor, 1e-9):>10.1f}")
    print(f"targets: <= 120 s and <= 4 GB -> {'met' if total_s <= 120 and peak <= 4e9 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
