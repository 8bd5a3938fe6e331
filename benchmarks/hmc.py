"""Head-motion correction side by side: batched torch, ANTs and nipy on series with known motion.

Usage::

    python benchmarks/hmc.py [--volumes 300] [--methods torch:1 torch:2 ants:2 nipy:1] [--json out.json]

Two series, each with its true rigid motion:

* ``simulator``: the simulator's 64×64×30 run at 3.3×3.3×4 mm (TR 2.16 s, interleaved slices,
  default motion), dummy scans dropped, motion estimated on the original (not slice-time
  corrected) series as the fMRI stage does;
* ``real-epi``: the first volume of a real Siemens EPI (``../shared/realdata/bold/dcm_qa_stc``,
  64×64×36) moved by a known random-walk motion (cubic B-spline), with Gaussian noise.

Every method runs in its own fresh process (``--worker``), so the peak resident memory is its
own (plus, for ANTs, its largest worker process), and the table reports wall-clock seconds of
the motion estimate (boldref + registrations; nipy: ``SpaceTimeRealign.estimate``), peak RSS,
RMS translation (mm) and rotation (rad) error against the truth after removing the constant pose
offset between the method's reference and the truth's (volume 0), and the mean absolute error of
framewise displacement (Power, 50 mm radius). ``torch:N`` is the batched method with N CPU threads
(``cuda`` rows are added when a GPU is present), ``ants:N`` the ANTs path with N processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REAL_EPI = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "bold" / \
    "dcm_qa_stc" / "Siemens_fMRIcontin_30x30x36_4.nii"


def _peak_rss_gb() -> tuple[float, float]:
    """Peak RSS (GB) of this process and of its largest finished child process."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2


def simulator_series(volumes: int, out: Path) -> Path:
    """The simulator's realistic-grid run with its true motion, saved as an ``.npz``."""
    from bids_eeg2fmri.simulate import SimulationParams, load_ground_truth, simulate_dataset

    root = Path(tempfile.mkdtemp(prefix="hmcbench-", dir=out.parent))
    result = simulate_dataset(root / "bids", SimulationParams(
        subjects=1, volumes=volumes, grid=(64, 64, 30), voxel_size=(3.3, 3.3, 4.0), channels=4,
        sfreq=250.0, seed=1))
    truth = load_ground_truth(result.bids_dir, "01")
    import nibabel as nib

    bold = Path(result.runs[0].bold)
    img = nib.load(bold)
    n0 = int(truth["dummy_scans"])
    meta = json.loads(bold.with_name(bold.name.split(".")[0] + ".json").read_text())
    np.savez(out, data=np.asarray(img.dataobj, dtype=np.float32)[..., n0:], affine=img.affine,
             true=np.asarray(truth["motion_matrices"])[n0:], center=np.asarray(truth["motion_centre"]),
             tr=float(meta["RepetitionTime"]), slice_times=np.asarray(meta["SliceTiming"]))
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    return out


def real_epi_series(volumes: int, out: Path, seed: int = 5) -> Path:
    """A real EPI volume moved by a known random walk (≈ 0.15 mm mean FD), with noise."""
    import nibabel as nib

    from bids_eeg2fmri.fmri import motion

    img = nib.load(REAL_EPI)
    vol = np.asarray(img.dataobj, dtype=np.float32)[..., 0]
    rng = np.random.default_rng(seed)
    steps = np.column_stack([rng.normal(0, 0.06, (volumes, 3)), rng.normal(0, 0.0008, (volumes, 3))])
    steps[0] = 0
    params = np.cumsum(steps, axis=0)
    c = motion.grid_center(vol.shape, img.affine)
    true = motion.params_to_matrices(params, c)
    noise = 0.01 * float(np.percentile(vol, 99))
    # volume_i(M_i p) = volume_0(p): volume 0 sampled at M_i⁻¹ q.
    data = np.stack([motion.resample_rigid(vol, img.affine, np.linalg.inv(m), order=3)
                     + rng.normal(0, noise, vol.shape).astype(np.float32) for m in true], axis=-1)
    np.savez(out, data=data.astype(np.float32), affine=img.affine, true=true, center=c, tr=2.0,
             slice_times=np.zeros(vol.shape[2]))
    return out


def estimate(method: str, procs: int, series: dict) -> tuple[np.ndarray, float]:
    """RAS matrices (reference → volume) of one method, and its seconds."""
    data, affine = series["data"], series["affine"]
    if method in ("torch", "cuda", "ants"):
        from bids_eeg2fmri.fmri import motion

        if method in ("torch", "cuda"):
            import torch  # noqa: F401  (imported before the clock starts, as in a pipeline node)
        kw = {"method": "ants" if method == "ants" else "torch", "n_procs": procs}
        t0 = time.perf_counter()
        if method == "cuda":
            from bids_eeg2fmri.fmri.batched_rigid import register_batched

            ref = motion.robust_reference(data, affine, **kw)
            mats = register_batched(ref, data, affine, device="cuda")
        else:
            ref = motion.robust_reference(data, affine, **kw)
            mats = motion.register_volumes(ref, data, affine, **kw)
        return mats, time.perf_counter() - t0
    if method == "nipy":
        import nibabel as nib
        from nipy.algorithms.registration import SpaceTimeRealign

        img = nib.Nifti1Image(data, affine)
        img.header.set_zooms(img.header.get_zooms()[:3] + (float(series["tr"]),))
        t0 = time.perf_counter()
        realign = SpaceTimeRealign(img, tr=float(series["tr"]),
                                   slice_times=np.asarray(series["slice_times"]), slice_info=2)
        realign.estimate()
        # nipy's transforms map reference-grid world points to each scan's world points, like
        # ours (``resample4d`` samples scan t at T_t(x)).
        mats = np.stack([t.as_affine() for t in realign._transforms[0]])
        return mats, time.perf_counter() - t0
    raise ValueError(f"unknown method {method!r}")


def errors(mats: np.ndarray, true: np.ndarray, center: np.ndarray) -> dict[str, float]:
    """RMS translation/rotation errors and mean |FD error| after removing the constant offset."""
    from bids_eeg2fmri.fmri import motion
    from bids_eeg2fmri.fmri.confounds import framewise_displacement

    d = np.mean([np.linalg.inv(t) @ e for t, e in zip(true, mats)], axis=0)
    u, _, vt = np.linalg.svd(d[:3, :3])
    d[:3, :3] = u @ vt
    ref = motion.matrices_to_params(true @ d, center)
    est = motion.matrices_to_params(mats, center)
    rms_t, rms_r = motion.framewise_rms(est, ref)
    fd_true = framewise_displacement(motion.matrices_to_params(true, center))[1:]
    fd_est = framewise_displacement(est)[1:]
    return {"rms_trans_mm": rms_t, "rms_rot_rad": rms_r,
            "fd_error_mm": float(np.mean(np.abs(fd_est - fd_true))),
            "mean_true_fd_mm": float(np.mean(fd_true))}


def worker(spec: str, series_file: Path) -> dict:
    """Run one method in this (fresh) process and report time, memory and errors."""
    method, _, procs = spec.partition(":")
    series = dict(np.load(series_file))
    before = _cpu_seconds()
    mats, seconds = estimate(method, int(procs or 1), series)
    cpu = _cpu_seconds() - before
    own, child = _peak_rss_gb()
    return {"method": spec, "seconds": seconds, "cpu_s": cpu, "peak_rss_gb": own,
            "peak_rss_worker_gb": child,
            **errors(mats, series["true"], series["center"])}


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (less load-sensitive
    than wall-clock time on a shared machine)."""
    import resource

    own, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "antspyx", "nipy", "numpy", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--methods", nargs="+", default=["torch:1", "torch:2", "ants:2", "nipy:1"])
    parser.add_argument("--series", nargs="+", default=["simulator", "real-epi"],
                        choices=("simulator", "real-epi"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "SERIES_NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return 0

    methods = list(args.methods)
    try:
        import torch

        if torch.cuda.is_available() and "cuda:1" not in methods:
            methods.append("cuda:1")
    except ImportError:
        pass
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; versions {versions()}",
          flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="hmcbench-"))
    rows = []
    makers = {"simulator": simulator_series, "real-epi": real_epi_series}
    print(f"{'series':<10s} {'method':<8s} {'s':>7s} {'CPU s':>7s} {'RSS GB':>7s} {'trans mm':>9s} {'rot rad':>8s} "
          f"{'FD err':>7s} {'true FD':>7s}", flush=True)
    for name in args.series:
        path = makers[name](args.volumes, tmp / f"{name}.npz")
        for spec in methods:
            env = dict(os.environ)
            threads = spec.partition(":")[2] or "1"
            if spec.startswith("nipy"):
                env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                           MKL_NUM_THREADS=threads)
            proc = subprocess.run([sys.executable, __file__, "--worker", spec, os.fspath(path)],
                                  capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(f"{name:<10s} {spec:<8s} failed: {proc.stderr.strip().splitlines()[-1:]}",
                      flush=True)
                continue
            row = {"series": name, **json.loads(proc.stdout.strip().splitlines()[-1])}
            rows.append(row)
            # ANTs' worker processes run beside the main one: their peaks add up.
            procs = int(threads) if spec.startswith("ants") and int(threads) > 1 else 0
            rss = row["peak_rss_gb"] + procs * row["peak_rss_worker_gb"]
            row["peak_rss_total_gb"] = rss
            print(f"{name:<10s} {spec:<8s} {row['seconds']:7.1f} {row['cpu_s']:7.1f} {rss:7.2f} "
                  f"{row['rms_trans_mm']:9.3f} {row['rms_rot_rad']:8.4f} {row['fd_error_mm']:7.3f} "
                  f"{row['mean_true_fd_mm']:7.3f}", flush=True)
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "versions": versions()}, indent=2))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
