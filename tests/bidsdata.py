"""Small BIDS EEG-fMRI trees written with real writers (nibabel, mne-bids/pybv) for tests."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
from mne_bids import BIDSPath, write_raw_bids

TR = 2.0
N_VOLUMES = 12


def write_description(root: Path) -> None:
    """dataset_description.json, README and participants.tsv of a raw dataset."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "test dataset", "BIDSVersion": "1.10.0", "DatasetType": "raw",
         "License": "CC0", "Authors": ["Tester"]}, indent=2))
    (root / "README").write_text("A small dataset written by the tests.\n")


def write_bold(root: Path, sub: str, *, ses: str | None = None, task: str = "rest", run: int = 1,
               shape: tuple[int, int, int] = (8, 8, 6), n_volumes: int = N_VOLUMES, tr: float = TR,
               sidecar: dict | None = None, seed: int = 0) -> Path:
    """Write a float32 BOLD series with a complete BIDS sidecar; returns the NIfTI path."""
    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
    folder.mkdir(parents=True, exist_ok=True)
    stem = "_".join(p for p in (f"sub-{sub}", f"ses-{ses}" if ses else "", f"task-{task}",
                                f"run-{run}") if p)
    data = (100 + np.random.default_rng(seed).normal(size=(*shape, n_volumes))).astype(np.float32)
    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 4.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    path = folder / f"{stem}_bold.nii.gz"
    nib.save(img, path)
    n_slices = shape[2]
    meta = {"RepetitionTime": tr, "TaskName": task, "SliceEncodingDirection": "k",
            "SliceTiming": [round(float(t), 4) for t in np.arange(n_slices) * tr / n_slices]}
    meta.update(sidecar or {})
    meta = {k: v for k, v in meta.items() if v is not None}
    (folder / f"{stem}_bold.json").write_text(json.dumps(meta, indent=2))
    return path


def synthetic_raw(n_channels: int = 4, sfreq: float = 250.0, duration: float = N_VOLUMES * TR + 4,
                  tr: float = TR, n_volumes: int = N_VOLUMES, seed: int = 0) -> mne.io.RawArray:
    """An EEG RawArray with `Response/R128` volume markers every TR from 2 s on."""
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "O1", "O2"][:n_channels]
    info = mne.create_info(names, sfreq, ch_types="eeg")
    data = np.random.default_rng(seed).normal(scale=1e-5, size=(n_channels, int(duration * sfreq)))
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(None)
    onsets = 2.0 + np.arange(n_volumes) * tr
    raw.set_annotations(mne.Annotations(onsets, [0.0] * n_volumes, ["Response/R128"] * n_volumes))
    return raw


def write_eeg(root: Path, sub: str, *, ses: str | None = None, task: str = "rest", run: int = 1,
              raw: mne.io.BaseRaw | None = None, fmt: str = "BrainVision") -> Path:
    """Write EEG with mne-bids (pybv for BrainVision) and all sidecars; returns the data path."""
    raw = raw if raw is not None else synthetic_raw()
    raw.info["line_freq"] = 50
    bp = BIDSPath(subject=sub, session=ses, task=task, run=run, datatype="eeg", root=root)
    kwargs = {"format": fmt, "allow_preload": True} if raw.preload else {}
    write_raw_bids(raw, bp, overwrite=True, verbose="error", **kwargs)
    matches = bp.match()
    return Path(next(m for m in matches if m.suffix == "eeg").fpath)


def make_dataset(root: Path, subjects: tuple[str, ...] = ("01", "02"), *,
                 eeg_only: tuple[str, ...] = (), bold_only: tuple[str, ...] = ()) -> Path:
    """A dataset with paired runs for ``subjects`` plus EEG-only and BOLD-only participants."""
    everyone = subjects + eeg_only + bold_only
    for i, sub in enumerate(everyone):
        if sub not in eeg_only:
            write_bold(root, sub, seed=i)
        if sub not in bold_only:
            write_eeg(root, sub, raw=synthetic_raw(seed=i))
    write_description(root)
    write_participants(root, everyone)
    return root


def write_participants(root: Path, subjects: tuple[str, ...]) -> None:
    """participants.tsv listing every subject folder (mne-bids lists only the EEG ones)."""
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{s}\n" for s in sorted(subjects)))
    (root / "participants.json").write_text(json.dumps(
        {"participant_id": {"Description": "Participant identifier"}}, indent=2))
