"""ds003768 (Gu et al., sleep EEG-fMRI, Penn State) for two subjects.

As published: Brain Products Recorder raw EEG (32 channels, ECG last, 5 kHz, ``Response/R128``
per volume, ``SyncStatus/Sync On`` pulses) with no ``_eeg.json``, ``channels.tsv`` or
``events.tsv``; ``task-rest`` runs 1–2 (10 min) and ``task-sleep`` runs 1–N (15 min), ``run-1``
without zero padding; sleep stages under ``sourcedata/``; T1w only in the file list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .common import (SIZES, Marker, copy_present, fill, read_files, seed_of, select, synth_eeg,
                     recording, write_bold, write_brainvision)

DS = "ds003768"
SUBJECTS = ("01", "02")
SFREQ = 5000.0
# BrainCap MR 32: 31 EEG electrodes, the ECG on the chest lead as channel 32.
CHANNELS = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
            "P7", "P8", "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5",
            "CP6", "TP9", "TP10", "POz", "ECG"]
# Sleep runs last 15 min, rest runs 10 min.
LENGTH = {"rest": 1.0, "sleep": 1.5}
SYNC_DELAY = 0.37  # s after each volume trigger


def volumes(task: str, size: str = "small") -> int:
    """BOLD volumes of a run of ``task`` at ``size``."""
    return int(round(SIZES[size].volumes * LENGTH[task]))


def build(root: Path, *, size: str = "small", unfetched: tuple[str, ...] = ()) -> Path:
    """Rebuild the tree under ``root``; see :func:`common.fill` for ``unfetched``."""
    sz = SIZES[size]
    todo = copy_present(DS, root, select(read_files(DS), SUBJECTS))

    def make(e) -> bool:
        m = re.match(r"sub-(\w+?)_task-(\w+?)_run-(\d+)_(bold\.nii\.gz|eeg\.vhdr)$",
                     Path(e.path).name)
        if m is None:
            return False
        sub, task, run, kind = m.groups()
        seed = seed_of(sub, task, run)
        meta = json.loads((root / f"sub-{sub}/func/sub-{sub}_task-{task}_run-{run}_bold.json")
                          .read_text())
        tr, n_vol = float(meta["RepetitionTime"]), volumes(task, size)
        if kind.startswith("bold"):
            write_bold(root / e.path, n_slices=len(meta["SliceTiming"]), n_volumes=n_vol, tr=tr,
                       inplane=sz.inplane, fov=220.0, slice_thickness=4.0, seed=seed)
            return True
        first, n_times, samples, markers = recording(sz, n_vol, tr, SFREQ)
        # The SyncBox's status marker recurs with the scanner clock: same spacing as the TR.
        markers += [Marker("SyncStatus", "Sync On", int(s + SYNC_DELAY * SFREQ)) for s in samples]
        data, _ = synth_eeg(len(CHANNELS) - 1, n_times, SFREQ, volume_samples=samples,
                            shots_per_volume=35, seed=seed)
        write_brainvision(root / e.path, data, SFREQ, CHANNELS, markers, vendor="recorder")
        return True

    fill(root, todo, make, unfetched)
    return root
