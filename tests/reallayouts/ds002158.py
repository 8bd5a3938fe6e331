"""ds002158 (Pereira et al., CN-EPFL confidence) for two subjects.

As published: ``ses-001`` everywhere; ``task-main`` runs 001–006 with Recorder raw EEG (64
channels, no ECG lead — TP10 served for heartbeats —, 5 kHz, ``Response/R128`` per volume,
stimulus markers per trial) and ``task-rest`` BOLD without EEG; T1w and fieldmaps; a macOS
``._*`` file; EEGLAB-preprocessed, epoched EEG of all runs under
``derivatives/eegprep/sub-*/ses-001/eeg/*_task-main_eeg_preproc.set``; SPM-style BOLD under
``derivatives/fmriprep/…_preproc.nii`` (not fMRIPrep names, never fetched here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .common import (SIZES, Marker, copy_present, fill, read_files, seed_of, select, synth_eeg,
                     recording, write_bold, write_brainvision, write_eeglab_epochs)

DS = "ds002158"
SUBJECTS = ("02", "04")
SFREQ = 5000.0
PREP_SFREQ = 250.0
CHANNELS = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
            "P7", "P8", "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5",
            "CP6", "TP9", "TP10", "POz", "FCz", "F1", "F2", "C1", "C2", "P1", "P2", "AF3", "AF4",
            "FC3", "FC4", "CP3", "CP4", "PO3", "PO4", "F5", "F6", "C5", "C6", "P5", "P6", "AF7",
            "AF8", "FT7", "FT8", "TP7", "TP8", "PO7", "PO8", "FT9", "FT10", "Fpz", "CPz"]
# task-rest runs have 250 volumes, task-main runs 375.
LENGTH = {"main": 1.0, "rest": 2 / 3}


def volumes(task: str, size: str = "small") -> int:
    """BOLD volumes of a run of ``task`` at ``size``."""
    return int(round(SIZES[size].volumes * LENGTH[task]))


def build(root: Path, *, size: str = "small", unfetched: tuple[str, ...] = ()) -> Path:
    """Rebuild the tree under ``root``; see :func:`common.fill` for ``unfetched``."""
    sz = SIZES[size]
    todo = copy_present(DS, root, select(read_files(DS), SUBJECTS))
    tr = 1.28

    def trials(sub: str, run: str) -> list[tuple[float, str]]:
        ev = root / f"sub-{sub}/ses-001/func/sub-{sub}_ses-001_task-main_run-{run}_events.tsv"
        rows = [ln.split("\t") for ln in ev.read_text().splitlines()[1:] if ln.strip()]
        return [(float(r[0]), r[2]) for r in rows]

    def make(e) -> bool:
        name = Path(e.path).name
        if e.path.startswith("derivatives/eegprep/") and name.endswith("_eeg_preproc.set"):
            sub = re.match(r"sub-(\w+?)_", name).group(1)
            good = [(t, k) for run in ("001", "002", "003", "004", "005", "006")
                    for t, k in trials(sub, run) if k in ("act", "obs")]
            good = good[:3 * sz.volumes]  # fewer epochs for small fixtures
            n_t = int(0.8 * PREP_SFREQ)
            rng = np.random.default_rng(seed_of(sub, "eegprep"))
            data = rng.standard_normal((len(good), len(CHANNELS), n_t)).astype(np.float32) * 5
            write_eeglab_epochs(root / e.path, data, PREP_SFREQ, CHANNELS, -0.2,
                                [k for _, k in good])
            return True
        m = re.match(r"sub-(\w+?)_ses-001_task-(\w+?)_run-(\d+)_(bold\.nii\.gz|eeg\.vhdr)$", name)
        if m is None or e.path.startswith("derivatives/"):
            return False
        sub, task, run, kind = m.groups()
        seed = seed_of(sub, task, run)
        n_vol = volumes(task, size)
        if kind.startswith("bold"):
            meta = json.loads((root / e.path.replace(".nii.gz", ".json")).read_text())
            write_bold(root / e.path, n_slices=len(meta["SliceTiming"]), n_volumes=n_vol, tr=tr,
                       inplane=sz.inplane, fov=216.0, slice_thickness=2.0, seed=seed)
            return True
        first, n_times, samples, markers = recording(sz, n_vol, tr, SFREQ)
        code = {"act": "S  1", "obs": "S  2", "act-bad": "S  3", "obs-bad": "S  4"}
        markers += [Marker("Stimulus", code[k], first + int(t * SFREQ))
                    for t, k in trials(sub, run) if t < n_vol * tr]
        data, _ = synth_eeg(len(CHANNELS), n_times, SFREQ, volume_samples=samples,
                            shots_per_volume=16, ecg=False, seed=seed)
        write_brainvision(root / e.path, data, SFREQ, CHANNELS, markers, vendor="recorder")
        return True

    fill(root, todo, make, unfetched)
    return root
