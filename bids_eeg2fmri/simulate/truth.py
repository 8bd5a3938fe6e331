"""Read the ground truth a simulated dataset carries under ``derivatives/simulation``.

:func:`load_ground_truth` is the stable entry point for tests of every stage; its keys are
listed in its docstring and in ``docs/simulation.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import DataError
from ..resources.templates import TEMPLATE_SPACE
from .anatomy import SubjectAnatomy
from .bold import MOTION_COLUMNS

TRUTH_DIR = Path("derivatives") / "simulation"


def _label(value: str | int | None, key: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[len(key) + 1:] if text.startswith(f"{key}-") else text


def load_ground_truth(bids_dir: str | os.PathLike, subject: str | int,
                      session: str | int | None = None, run: int = 1, *, task: str = "rest",
                      mmap: bool = True) -> dict[str, Any]:
    """Load everything the simulator knows about one run.

    Parameters
    ----------
    bids_dir
        Root of the simulated BIDS dataset (the truth is read from
        ``bids_dir/derivatives/simulation``).
    subject
        ``01`` or ``sub-01``.
    session
        ``1`` / ``ses-1``, or ``None`` for single-session datasets.
    run
        Run number.
    task
        Task label.
    mmap
        Memory-map the large arrays (clean EEG, envelopes) instead of reading them.

    Returns
    -------
    dict
        Always: ``subject, session, run, task, group, params, paths, time_origin``;
        ``source_names, source_sfreq, source_times (n,), sources (n, K), sources_hrf (n, K),
        source_envelopes (n, K)`` (µV), ``source_bands, source_regions``;
        ``region_names (R,), region_driven (R,) bool, region_source (R,)`` (source name or
        None), ``region_labels_mni`` (NIfTI, values 1…R on the MNI 2 mm grid);
        ``subject_to_mni_affine (4, 4), warp`` (NIfTI displacement, mm) and ``anatomy``
        (:class:`~.anatomy.SubjectAnatomy`, ``anatomy.to_mni(points)``).
        With BOLD (else these keys are absent): ``tr, n_volumes, slice_timing (S,),
        slice_time_ref, volume_onsets (T,), slice_acquisition_times (T, S), dummy_scans,
        dummy_factors, motion (T, 6), motion_columns, motion_matrices (T, 4, 4),
        motion_centre (3,), epi_affine (4, 4), regional_signals (T, R),
        regional_signals_per_slice (T, S, R), noise_ceiling (R,)`` (NaN when un-driven),
        ``thermal_noise_sd, drift (T,), noiseless_bold, noiseless_bold_mni`` (NIfTI images).
        With EEG: ``eeg_sfreq, eeg_n_samples, first_volume_sample, volume_onset_samples (T,),
        eeg_channels, clean_eeg (C, N)`` (µV), ``channel_envelopes (B, C, n)`` (µV, on
        ``source_times``), ``bands`` (name → (lo, hi)), ``channel_groups`` (source → channels),
        ``spread_weights (C, K), line_noise_amplitudes, volume_marker`` (type, description),
        ``gradient`` (dict or None: ``amplitude_uv, slice_period, shots_per_volume, jitter_sd,
        shot_jitter (T, shots)``) and ``bcg`` (dict or None: ``r_peak_samples, delay_s,
        amplitude_uv, heart_rate``).

    Raises
    ------
    DataError
        When the dataset has no ground truth for that run.
    """
    root = Path(bids_dir) / TRUTH_DIR
    sub = _label(subject, "sub")
    ses = _label(session, "ses")
    if not (root / "simulation.json").is_file():
        raise DataError("no simulation ground truth (derivatives/simulation/simulation.json)",
                        bids_dir)
    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "")
    prefix = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}_run-{int(run)}"
    meta_path = folder / f"{prefix}_desc-truth_simulation.json"
    if not meta_path.is_file():
        raise DataError(f"no ground truth for {prefix}", root)
    meta = json.loads(meta_path.read_text())
    params = json.loads((root / "simulation.json").read_text())["Params"]
    anat = json.loads((root / f"sub-{sub}" / f"sub-{sub}_desc-anatomy_simulation.json")
                      .read_text())
    warp_path = root / f"sub-{sub}" / anat["WarpFile"]
    warp = nib.load(warp_path)
    src = pd.read_csv(folder / f"{prefix}_desc-sources_simulation.tsv", sep="\t")
    names = [s["Name"] for s in meta["Sources"]]
    paths: dict[str, Path] = {"truth": meta_path, "warp": warp_path,
                              "sources": folder / f"{prefix}_desc-sources_simulation.tsv",
                              "region_labels_mni": root / f"space-{TEMPLATE_SPACE}_res-2_desc-"
                                                          "regions_dseg.nii.gz"}
    out: dict[str, Any] = {
        "subject": sub, "session": ses, "run": int(run), "task": task, "group": meta["Group"],
        "params": params, "paths": paths, "time_origin": meta["TimeOrigin"],
        "source_names": names, "source_sfreq": float(meta["SourceSamplingFrequency"]),
        "source_times": src["time"].to_numpy(),
        "sources": src[names].to_numpy() if names else np.zeros((len(src), 0)),
        "sources_hrf": src[[f"{n}_hrf" for n in names]].to_numpy(),
        "source_envelopes": src[[f"{n}_envelope" for n in names]].to_numpy(),
        "source_bands": {s["Name"]: tuple(s["BandHz"]) for s in meta["Sources"]},
        "source_regions": {s["Name"]: s["Region"] for s in meta["Sources"]},
        "region_names": [r["Name"] for r in meta["Regions"]],
        "region_driven": np.array([r["Driven"] for r in meta["Regions"]], dtype=bool),
        "region_source": [r["Source"] for r in meta["Regions"]],
        "region_labels_mni": nib.load(paths["region_labels_mni"]),
        "subject_to_mni_affine": np.array(anat["SubjectToMNIAffine"]),
        "warp": warp,
    }
    out["anatomy"] = SubjectAnatomy(affine=out["subject_to_mni_affine"],
                                    warp=np.asarray(warp.dataobj, dtype=np.float32),
                                    warp_affine=warp.affine)
    if "BOLD" in meta:
        out.update(_bold_truth(meta, folder, prefix, params, paths))
    if "EEG" in meta:
        out.update(_eeg_truth(meta["EEG"], folder, prefix, paths, mmap))
    return out


def _bold_truth(meta: dict, folder: Path, prefix: str, params: dict,
                paths: dict[str, Path]) -> dict[str, Any]:
    b = meta["BOLD"]
    func = folder / "func"
    tr = float(b["RepetitionTime"])
    st = np.array(b["SliceTiming"])
    n_vol = int(b["NumberOfVolumes"])
    onsets = np.arange(n_vol) * tr
    res = b["TruthResolution"]
    paths.update({
        "motion": func / f"{prefix}_desc-motion_simulation.tsv",
        "motion_matrices": func / f"{prefix}_desc-motionmatrices_simulation.npy",
        "regional_signals": func / f"{prefix}_desc-regions_simulation.tsv",
        "regional_signals_per_slice": func / f"{prefix}_desc-regionsperslice_simulation.npy",
        "noiseless_bold": func / f"{prefix}_desc-noiseless_bold.nii.gz",
        "noiseless_bold_mni": func / f"{prefix}_space-{b['TruthSpace']}_res-{res}_desc-"
                                     "noiseless_bold.nii.gz",
    })
    motion = pd.read_csv(paths["motion"], sep="\t")
    regional = pd.read_csv(paths["regional_signals"], sep="\t")
    return {
        "tr": tr, "n_volumes": n_vol, "slice_timing": st,
        "slice_time_ref": float(b["SliceTimeReference"]), "volume_onsets": onsets,
        "slice_acquisition_times": onsets[:, None] + st[None, :],
        "dummy_scans": int(b["DummyScans"]), "dummy_factors": np.array(b["DummyFactors"]),
        "motion": motion[list(MOTION_COLUMNS)].to_numpy(), "motion_columns": MOTION_COLUMNS,
        "motion_matrices": np.load(paths["motion_matrices"]),
        "motion_centre": np.array(b["MotionCentre"]), "epi_affine": np.array(b["EPIAffine"]),
        "regional_signals": regional.to_numpy(dtype=float),
        "regional_signals_per_slice": np.load(paths["regional_signals_per_slice"]),
        "noise_ceiling": np.array([np.nan if r.get("NoiseCeiling") is None else r["NoiseCeiling"]
                                   for r in meta["Regions"]]),
        "thermal_noise_sd": float(b["ThermalNoiseSD"]), "drift": np.array(b["Drift"]),
        "noiseless_bold": nib.load(paths["noiseless_bold"]),
        "noiseless_bold_mni": nib.load(paths["noiseless_bold_mni"]),
    }


def _eeg_truth(e: dict, folder: Path, prefix: str, paths: dict[str, Path],
               mmap: bool) -> dict[str, Any]:
    eeg = folder / "eeg"
    paths.update({"clean_eeg": eeg / f"{prefix}_desc-clean_simulation.npy",
                  "channel_envelopes": eeg / f"{prefix}_desc-envelopes_simulation.npy"})
    mode = "r" if mmap else None
    grad = e.get("Gradient")
    bcg = e.get("BCG")
    return {
        "eeg_sfreq": float(e["SamplingFrequency"]), "eeg_n_samples": int(e["NumberOfSamples"]),
        "first_volume_sample": int(e["FirstVolumeSample"]),
        "volume_onset_samples": np.array(e["VolumeOnsetSamples"], dtype=np.int64),
        "eeg_channels": list(e["Channels"]), "recorded_channels": list(e["RecordedChannels"]),
        "clean_eeg": np.load(paths["clean_eeg"], mmap_mode=mode),
        "channel_envelopes": np.load(paths["channel_envelopes"], mmap_mode=mode),
        "bands": {k: tuple(v) for k, v in e["Bands"].items()},
        "channel_groups": {k: list(v) for k, v in e["ChannelGroups"].items()},
        "spread_weights": np.array(e["SpreadWeights"]),
        "line_frequency": float(e["LineFrequency"]),
        "line_noise_amplitudes": np.array(e["LineNoiseAmplitudes"]),
        "volume_marker": (e["VolumeMarker"]["Type"], e["VolumeMarker"]["Description"]),
        "gradient": None if grad is None else {
            "amplitude_uv": float(grad["AmplitudeMicroV"]),
            "slice_period": float(grad["SlicePeriod"]),
            "shots_per_volume": int(grad["ShotsPerVolume"]),
            "jitter_sd": float(grad["JitterSD"]), "shot_jitter": np.array(grad["ShotJitter"])},
        "bcg": None if bcg is None else {
            "r_peak_samples": np.array(bcg["RPeakSamples"], dtype=np.int64),
            "delay_s": float(bcg["DelaySeconds"]), "amplitude_uv": float(bcg["AmplitudeMicroV"]),
            "heart_rate": float(bcg["HeartRate"])},
    }
