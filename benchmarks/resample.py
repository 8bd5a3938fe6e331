"""Resampling engines on the CPU: SciPy's cubic B-spline against the batched torch formulation.

Usage::

    python benchmarks/resample.py [--volumes 24] [--threads 1]

The fMRI stage's one-shot resampling samples every volume of a 64×64×30 run (3.3×3.3×4 mm) at the
template brain's 2 mm voxels (≈ 235 k points). Here the same number of points and volume size,
without the registration (the template points are sampled directly, with a random rigid head
motion per volume), so the script needs no data. Each engine runs in this process
(``--threads`` torch threads; SciPy is single-threaded); the table gives wall-clock and CPU
(user + system) seconds per volume and the largest difference from SciPy's cubic result.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch
    from scipy import ndimage

    from bids_eeg2fmri.fmri import masking, motion, resample
    from bids_eeg2fmri.resources.templates import template_grid

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    shape = (64, 64, 30)
    bold_aff = np.diag([3.3, 3.3, 4.0, 1.0])
    bold_aff[:3, 3] = [-105.6, -125.0, -50.0]  # the grid covers the template brain's slab
    data = ndimage.gaussian_filter(rng.normal(0, 1, shape + (args.volumes,)), (1.5, 1.5, 1, 0))
    data = (200 * data + 1000).astype(np.float32)
    params = np.column_stack([rng.normal(0, 1.0, (args.volumes, 3)),
                              rng.normal(0, 0.02, (args.volumes, 3))])
    hmc = motion.params_to_matrices(params, motion.grid_center(shape, bold_aff))
    gshape, gaff = template_grid(2)
    mask = masking.template_mask_on_grid(gshape, gaff)
    print(f"{args.volumes} volumes of {shape}, {int(mask.sum())} template points, "
          f"torch {torch.__version__} ({args.threads} thread(s)), load {os.getloadavg()[0]:.1f}")
    rows, ref = [], None
    for engine, order in (("scipy", 3), ("torch", 3), ("scipy", 1), ("torch", 1)):
        t, c = time.perf_counter(), _cpu()
        out = resample.resample_series(data, bold_aff, hmc, None, None, mask, gaff, order=order,
                                       engine=engine, device="cpu")
        wall, cpu = time.perf_counter() - t, _cpu() - c
        ref = out if ref is None else ref
        rows.append((engine, order, wall / args.volumes, cpu / args.volumes,
                     float(np.abs(out - ref).max()), float(np.abs(ref).max())))
    print(f"{'engine':<7}{'order':>6}{'s/volume':>10}{'CPU s/volume':>14}"
          f"{'max |diff| vs SciPy cubic':>28}")
    for engine, order, wall, cpu, diff, scale in rows:
        print(f"{engine:<7}{order:>6}{wall:>10.3f}{cpu:>14.3f}{diff:>17.3g} (of {scale:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
