"""ds002338 (Lioi/Perronnet et al. "XP2", motor-imagery neurofeedback) for two subjects.

As published: task-level inheritance at the top (``task-*_bold.json``, ``task-*_eeg.json``,
``task-*_channels.tsv`` space-separated with quoted names, ``task-*_events.tsv`` with paradigm
blocks only); ``task-1dNF`` with ``run-0N``, ``task-MIpre``/``task-MIpost`` without ``run-``;
Recorder raw EEG (64 channels, ECG on channel 32, 5 kHz, 0.5 µV, ``Response/R128`` per volume,
``S 99`` rest / ``S  2`` task block markers); BrainVision Analyzer exports under
``derivatives/sub-*/eeg_pp/d_sub-*_eeg_pp.{vhdr,vmrk,dat}`` (version 2.0, IEEE float, 200 Hz,
segmented from the first ``S 99`` to the last ``S  2`` + 20 s, ``R128`` kept, ``Pulse Artifact``
markers; none for xp202's MIpre) and custom ``head_motion`` tables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .common import (SIZES, LAYOUTS, Marker, copy_present, fill, read_files, seed_of, select,
                     synth_eeg, recording, write_bold, write_brainvision, write_text)

DS = "ds002338"
SUBJECTS = ("xp201", "xp202")
SFREQ = 5000.0
PP_SFREQ = 200.0
# Block markers: the scanner starts 2 s before the first rest block; 20 s rest, 20 s task.
FIRST_BLOCK, BLOCK = 2.0, 20.0


def channel_names() -> list[str]:
    """Electrode names in recording order, from the published (space-separated) channels.tsv."""
    lines = (LAYOUTS / DS / "tree" / "task-MIpre_channels.tsv").read_text().splitlines()[1:]
    return [ln.split()[0].strip("'\u2019") for ln in lines if ln.strip()]


def _entities(name: str):
    m = re.match(r"(?:d_)?sub-(\w+?)_task-([A-Za-z0-9]+)(?:_run-(\d+))?_", name)
    return m.groups() if m else None


def build(root: Path, *, size: str = "small", unfetched: tuple[str, ...] = ()) -> Path:
    """Rebuild the tree under ``root``; see :func:`common.fill` for ``unfetched``."""
    sz = SIZES[size]
    names = channel_names()
    todo = copy_present(DS, root, select(read_files(DS), SUBJECTS))
    tr = 1.0
    n_vol = sz.volumes

    def blocks(n_vol: int) -> list[tuple[float, str]]:
        t, out, k = FIRST_BLOCK, [], 0
        while t < n_vol * tr:
            out.append((t, "S 99" if k % 2 == 0 else "S  2"))
            t, k = t + BLOCK, k + 1
        return out

    def make(e) -> bool:
        name = Path(e.path).name
        ents = _entities(name)
        if ents is None:
            return False
        sub, task, run = ents
        seed = seed_of(sub, task, run or "")
        if name.endswith("_bold.nii.gz"):
            meta = json.loads((root / f"task-{task}_bold.json").read_text())
            write_bold(root / e.path, n_slices=len(meta["SliceTiming"]), n_volumes=n_vol, tr=tr,
                       inplane=sz.inplane, fov=212.0, slice_thickness=4.0, seed=seed)
            return True
        if name.endswith("_eeg.vhdr"):
            first, n_times, samples, markers = recording(sz, n_vol, tr, SFREQ)
            markers += [Marker("Stimulus", d, first + int(t * SFREQ)) for t, d in blocks(n_vol)]
            data, _ = synth_eeg(len(names) - 1, n_times, SFREQ, volume_samples=samples,
                                shots_per_volume=16, seed=seed)
            data = np.insert(data[:-1], 31, data[-1], axis=0)  # ECG is channel 32
            write_brainvision(root / e.path, data, SFREQ, names, markers, vendor="recorder",
                              resolution=0.5)
            return True
        if name.endswith("_eeg_pp.vhdr"):
            # Analyzer export: corrected, 200 Hz, from the first block marker to the end of the run.
            start = FIRST_BLOCK
            n_times = int((n_vol * tr - start) * PP_SFREQ)
            vol_t = np.arange(n_vol) * tr - start
            vol_s = np.round(vol_t[vol_t >= 0] * PP_SFREQ).astype(int)
            data, peaks = synth_eeg(len(names) - 1, n_times, PP_SFREQ, volume_samples=None,
                                    seed=seed + 1)
            data = np.insert(data[:-1], 31, data[-1], axis=0)
            data[np.arange(len(names)) != 31] *= 0.5  # BCG removed: smaller than raw
            markers = [Marker("Response", "R128", int(s)) for s in vol_s]
            markers += [Marker("Stimulus", d, int((t - start) * PP_SFREQ)) for t, d in blocks(n_vol)]
            markers += [Marker("Pulse Artifact", "R", int(p)) for p in peaks]
            write_brainvision(root / e.path, data, PP_SFREQ, names, markers, vendor="analyzer",
                              data_ext=".dat")
            return True
        if name.endswith("_headmotion.tsv"):
            rng = np.random.default_rng(seed)
            motion = np.cumsum(rng.normal(0, 0.01, (n_vol, 6)), axis=0)
            write_text(root / e.path, "\n".join("\t".join(f"{v:.6f}" for v in row)
                                                for row in motion) + "\n")
            return True
        return False

    fill(root, todo, make, unfetched)
    return root
