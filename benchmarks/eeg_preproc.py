"""Benchmark of the EEG preprocessing on a realistic recording: seconds per stage, peak RSS, I/O floor.

Default: one simulated EEG-only run of 64 channels at 5 kHz, 300 volumes of 2.16 s (≈ 658 s with
lead and tail) with MR gradient and BCG artifacts (an ECG channel), simulated in a child process so
that its memory does not count. The stages then run in this process exactly as
``bids_eeg2fmri.eeg.pipeline.clean_eeg`` / ``spectral_features`` chain them, each timed alone.
The I/O floor is the time to read the recording and write the three outputs, measured in the same
run. Targets (2 cores): total ≤ 60 s, peak RSS ≤ 4 GB.

Usage::

    python benchmarks/eeg_preproc.py [--data BIDS_DIR] [--keep DIR] [--channels 64] [--sfreq 5000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIM_CODE = """
import sys
from bids_eeg2fmri.simulate.dataset import simulate_dataset
from bids_eeg2fmri.simulate.params import SimulationParams
p = SimulationParams(subjects=0, eeg_only_subjects=1, volumes={volumes}, channels={channels},
                     sfreq={sfreq}, gradient_artifact=True, bcg=True, seed=1)
simulate_dataset(sys.argv[1], p)
"""


def peak_rss_gb() -> float:
    """Peak resident memory of this process in GB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="existing simulated dataset (skips simulation)")
    ap.add_argument("--keep", type=Path, help="simulate into this folder and keep it")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--sfreq", type=float, default=5000.0)
    ap.add_argument("--volumes", type=int, default=300)
    args = ap.parse_args(argv)

    tmp = None
    data = args.data
    if data is None:
        if args.keep is not None:
            data = args.keep
        else:
            tmp = tempfile.TemporaryDirectory(prefix="eegbench-")
            data = Path(tmp.name) / "sim"
        t = time.perf_counter()
        code = SIM_CODE.format(volumes=args.volumes, channels=args.channels, sfreq=args.sfreq)
        subprocess.run([sys.executable, "-c", code, str(data)], check=True)
        print(f"simulated in {time.perf_counter() - t:.1f} s (child process, not counted)")

    import mne
    import numpy as np

    from bids_eeg2fmri.bids.derivatives import atomic_path, build_path, write_json
    from bids_eeg2fmri.eeg import artifacts, filtering, triggers
    from bids_eeg2fmri.eeg.io import read_eeg
    from bids_eeg2fmri.config import EEGConfig
    from bids_eeg2fmri.eeg.pipeline import (add_volume_annotations,
                                            spectral_features, write_bandpower_tsv,
                                            write_spectrogram_h5)

    vhdr = next(Path(data).glob("sub-*/eeg/*_eeg.vhdr"))
    truth = json.loads(next(Path(data).glob("derivatives/simulation/sub-*/*_desc-truth_simulation.json"))
                       .read_text())
    true_onsets = np.asarray(truth["EEG"]["VolumeOnsetSamples"])
    # EEG-only runs have no BOLD sidecar: the TR is the true onset spacing (10800 samples = 2.16 s)
    tr = float(np.median(np.diff(true_onsets))) / truth["EEG"]["SamplingFrequency"]
    n_vol = true_onsets.size
    opts = EEGConfig()
    out = Path(tempfile.mkdtemp(prefix="eegbench-out-"))
    times: dict[str, float] = {}

    def stage(name, fn, *a, **k):
        t0 = time.perf_counter()
        res = fn(*a, **k)
        times[name] = time.perf_counter() - t0
        return res

    t_all = time.perf_counter()
    raw = stage("read (I/O)", read_eeg, vhdr)
    shape = (len(raw.ch_names), raw.n_times, raw.info["sfreq"])
    onsets = stage("volume onsets", triggers.find_volume_onsets_raw, raw, tr=tr, n_volumes=n_vol)
    grad = stage("gradient AAS", artifacts.correct_gradient, raw, onsets.samples, "auto")
    stage("resample to 250 Hz", filtering.resample, raw, opts.eeg_sfreq)
    stage("notch + band-pass", filtering.bandpass, raw, opts.eeg_l_freq, opts.eeg_h_freq,
          line_freq=50.0)
    bcg = stage("BCG PCA-OBS", artifacts.correct_bcg, raw, "auto")
    stage("bad channels + reference", lambda: (filtering.handle_bad_channels(raw),
                                               filtering.average_reference(raw)))
    add_volume_annotations(raw, onsets.times, tr)
    feats = stage("STFT + band power", spectral_features, raw, onsets.times, tr, opts)

    def write_outputs():
        src = vhdr.name
        fif = build_path(out, src, suffix="eeg", extension=".fif", datatype="eeg", desc="preproc")
        with atomic_path(fif) as p:
            raw.save(p, verbose=False)
        h5 = build_path(out, src, suffix="spectrogram", extension=".h5", datatype="eeg", desc="stft")
        with atomic_path(h5) as p:
            write_json(h5.with_suffix(".json"), write_spectrogram_h5(p, feats, opts.stft_scale))
        tsv = build_path(out, src, suffix="timeseries", extension=".tsv", datatype="eeg",
                         desc="bandpower")
        with atomic_path(tsv) as p:
            write_json(tsv.with_suffix(".json"), write_bandpower_tsv(p, feats))

    stage("write outputs (I/O)", write_outputs)
    total = time.perf_counter() - t_all
    io_floor = times["read (I/O)"] + times["write outputs (I/O)"]

    print(f"\nEEG preprocessing benchmark: {shape[0]} channels x {shape[1] / shape[2]:.0f} s at "
          f"{shape[2]:g} Hz, {n_vol} volumes, gradient {grad.method}, BCG {bcg.method} "
          f"({bcg.n_components} PCs, pulse delay {bcg.pulse_delay_s or 0:.2f} s); "
          f"mne {mne.__version__}, numpy {np.__version__}")
    print(f"{'stage':<28s}{'seconds':>9s}")
    for name, sec in times.items():
        print(f"{name:<28s}{sec:9.2f}")
    print(f"{'total':<28s}{total:9.2f}")
    print(f"{'I/O floor (read + write)':<28s}{io_floor:9.2f}")
    print(f"{'compute (total - I/O)':<28s}{total - io_floor:9.2f}")
    print(f"peak RSS {peak_rss_gb():.2f} GB; volume onsets exact: "
          f"{onsets.samples.tolist() == truth['EEG']['VolumeOnsetSamples']}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
