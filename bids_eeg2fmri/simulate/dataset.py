"""Write a simulated simultaneous EEG-fMRI BIDS dataset and its ground truth.

The dataset is assembled in a hidden folder beside ``out_dir`` and renamed into place at the
end, so a killed run never leaves a half-written dataset under the requested name. Every random
draw comes from ``numpy.random.SeedSequence(seed, spawn_key=…)`` keyed by participant, session
and run, and no file holds a wall-clock time, so the same options give byte-identical trees.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .._version import __version__
from ..bids.derivatives import BIDS_VERSION, CODE_URL, atomic_write_text, write_json
from ..errors import ExitCode, UsageError, UserError
from ..resources.templates import TEMPLATE_SPACE, template_grid
from . import eeg as eegsim
from .anatomy import MNIModel, build_mni_model, random_subject
from .bold import MOTION_COLUMNS, BoldRun, region_drive, simulate_bold
from .brainvision import write_brainvision
from .params import BANDS, SimulationParams, marker_type_and_description
from .sources import SOURCE_SFREQ, Sources, simulate_sources, source_grid
from .truth import TRUTH_DIR
from .writers import save_nifti, save_npy, write_tsv

__all__ = ["TRUTH_DIR", "RunRecord", "SimulationResult", "simulate_dataset"]

MEAS_DATE = "20000101120000000000"  # fixed BrainVision recording date: no wall clock in files
SIMULATOR_NAME = "bids_eeg2fmri-simulate"
_TRUTH_IGNORE = ("*_simulation.*", "*.npy", "/simulation.json", "/regions.tsv",
                 "/space-*")


@dataclass
class RunRecord:
    """Paths written for one run (``None`` for a modality the participant lacks)."""

    subject: str
    session: str | None
    run: int
    bold: Path | None = None
    eeg: Path | None = None
    truth: Path | None = None


@dataclass
class SimulationResult:
    """What :func:`simulate_dataset` wrote.

    Attributes
    ----------
    bids_dir
        Root of the raw BIDS dataset.
    truth_dir
        ``bids_dir/derivatives/simulation``.
    participants
        ``(label, group)`` with group ``eegfmri``, ``eeg`` or ``fmri``.
    runs
        One record per run.
    params
        The options used.
    """

    bids_dir: Path
    truth_dir: Path
    participants: list[tuple[str, str]]
    runs: list[RunRecord] = field(default_factory=list)
    params: SimulationParams | None = None


def participant_label(index: int, total: int) -> str:
    """Zero-padded label (``01`` …; three digits past 99 participants)."""
    return f"{index + 1:0{3 if total > 99 else 2}d}"


def _prefix(sub: str, ses: str | None, task: str, run: int) -> str:
    return f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}_run-{run}"


def _folder(root: Path, sub: str, ses: str | None) -> Path:
    return root / f"sub-{sub}" / (f"ses-{ses}" if ses else "")


def _seed(params: SimulationParams, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(params.seed, spawn_key=tuple(key))


# ------------------------------------------------------------------------------- entry point
def simulate_dataset(out_dir: str | os.PathLike, params: SimulationParams | None = None, *,
                     overwrite: bool = False,
                     progress: Callable[[str], None] | None = None) -> SimulationResult:
    """Simulate a BIDS dataset of simultaneous EEG-fMRI with its ground truth.

    Parameters
    ----------
    out_dir
        Folder to create; it must not exist or be empty unless ``overwrite``.
    params
        Options (validated here); ``None`` gives the demo size.
    overwrite
        Replace an existing non-empty ``out_dir``.
    progress
        Called with a short message as each run is simulated.

    Returns
    -------
    SimulationResult

    Raises
    ------
    UsageError
        For bad options or an existing non-empty ``out_dir`` without ``overwrite``.
    """
    params = (params or SimulationParams()).validate()
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise UsageError("output exists and is not a folder", out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError("output folder exists and is not empty (use --overwrite)", out)
    stage = out.parent / f".tmp-{secrets.token_hex(4)}-{out.name}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as exc:
        raise UserError(f"cannot create output folder: {exc.strerror}", ExitCode.CANT_CREATE,
                        out.parent) from None
    try:
        result = _simulate_into(stage, params, progress or (lambda _msg: None))
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    result.bids_dir = out
    result.truth_dir = out / TRUTH_DIR
    for rec in result.runs:
        for name in ("bold", "eeg", "truth"):
            path = getattr(rec, name)
            if path is not None:
                setattr(rec, name, out / path.relative_to(stage))
    return result


def _simulate_into(root: Path, params: SimulationParams,
                   progress: Callable[[str], None]) -> SimulationResult:
    truth = root / TRUTH_DIR
    mni = build_mni_model(params.region_names, params.voxel_size)
    grid = template_grid(params.truth_resolution)
    result = SimulationResult(bids_dir=root, truth_dir=truth, participants=[], params=params)
    rows: dict[str, list[Any]] = {"participant_id": [], "age": [], "sex": [], "handedness": [],
                                  "group": []}
    sessions = [None] if params.sessions == 1 else [str(s + 1) for s in range(params.sessions)]
    for i in range(params.n_participants):
        sub = participant_label(i, params.n_participants)
        group = params.participant_group(i)
        rng_anat = np.random.default_rng(_seed(params, i, 0))
        rows["participant_id"].append(f"sub-{sub}")
        rows["age"].append(int(rng_anat.integers(20, 46)))
        rows["sex"].append(str(rng_anat.choice(["F", "M"])))
        rows["handedness"].append("R" if rng_anat.random() < 0.9 else "L")
        rows["group"].append(group)
        if params.cohort(i) is not None:
            rows.setdefault("cohort", []).append(params.cohort(i))
        result.participants.append((sub, group))
        anatomy = random_subject(rng_anat, max_rotation_deg=params.max_rotation_deg,
                                 max_translation_mm=params.max_translation_mm,
                                 max_scale=params.max_scale, warp_mm=params.warp_mm)
        _write_anatomy_truth(truth, sub, group, anatomy)
        for s, ses in enumerate(sessions):
            for run in range(1, params.runs + 1):
                progress(f"sub-{sub}" + (f" ses-{ses}" if ses else "") + f" run-{run}")
                rec = _simulate_run(root, truth, params, mni, anatomy, grid, sub, ses, run,
                                    group, _seed(params, i, 1, s, run), params.coupling(i))
                result.runs.append(rec)
    write_tsv(root / "participants.tsv", rows)
    write_json(root / "participants.json", {**_PARTICIPANTS_JSON, **(
        {"cohort": _COHORT_JSON} if params.group_effect else {})})
    write_json(root / "dataset_description.json", {
        "Name": "bids_eeg2fmri simulated simultaneous EEG-fMRI",
        "BIDSVersion": BIDS_VERSION, "DatasetType": "raw", "License": "CC0",
        "Authors": ["bids_eeg2fmri simulator"],
        "GeneratedBy": [{"Name": SIMULATOR_NAME, "Version": __version__, "CodeURL": CODE_URL}],
    })
    atomic_write_text(root / "README", _readme(params))
    _write_dataset_truth(truth, params, mni)
    return result


_PARTICIPANTS_JSON = {
    "age": {"Description": "age at the (simulated) scan", "Units": "year"},
    "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
    "handedness": {"Description": "handedness", "Levels": {"R": "right", "L": "left"}},
    "group": {"Description": "modalities recorded for this participant",
              "Levels": {"eegfmri": "simultaneous EEG and BOLD", "eeg": "EEG only",
                         "fmri": "BOLD only"}},
}


_COHORT_JSON = {"Description": "simulated group (--group-effect): patients' first source modulates "
                               "its rhythm and drives its region less",
                "Levels": {"control": "full coupling", "patient": "attenuated coupling"}}


def _readme(params: SimulationParams) -> str:
    return (
        "# Simulated simultaneous EEG-fMRI\n\n"
        "Written by `bids-eeg2fmri-simulate` (bids_eeg2fmri). Every recording is synthetic: "
        "latent neural sources drive EEG band-power envelopes and, through the canonical HRF, "
        "BOLD in Harvard-Oxford regions of a warped MNI152 brain, seen through an oblique EPI "
        "grid with slice timing, head motion, dummy-scan saturation, drift and noise.\n\n"
        f"The ground truth is in `derivatives/simulation/` (see `simulation.json` there).\n\n"
        f"Seed {params.seed}; options:\n\n```json\n"
        + json.dumps(params.to_dict(), indent=2) + "\n```\n")


# ----------------------------------------------------------------------------------- one run
def _simulate_run(root: Path, truth: Path, params: SimulationParams, mni: MNIModel, anatomy,
                  grid, sub: str, ses: str | None, run: int, group: str,
                  seed: np.random.SeedSequence, coupling: list[float] | None = None) -> RunRecord:
    rngs = [np.random.default_rng(s) for s in seed.spawn(6)]
    prefix = _prefix(sub, ses, params.task, run)
    timing = eegsim.eeg_timing(params)
    times = source_grid(-params.eeg_lead, params.volumes * params.tr + params.eeg_tail)
    amps = np.array([eegsim.BAND_AMPLITUDE[s.band] for s in params.source_specs])
    sources = simulate_sources(rngs[0], times, params.sources, amps, coupling)
    rec = RunRecord(subject=sub, session=ses, run=run)
    info: dict[str, Any] = {
        "Subject": sub, "Session": ses, "Run": run, "Task": params.task, "Group": group,
        "SourceSamplingFrequency": SOURCE_SFREQ, "SourceStartTime": float(times[0]),
        "TimeOrigin": "onset of the first BOLD volume (first volume trigger)",
        "Sources": [{"Name": s.name, "Band": s.band, "BandHz": list(BANDS[s.band]),
                     "CentreElectrode": s.centre, "Region": s.region,
                     "AmplitudeMicroV": float(a), "Coupling": float(c)}
                    for s, a, c in zip(params.source_specs, amps, coupling or [1.0] * len(amps))],
    }
    drive = region_drive(params, len(mni.region_names))
    info["Regions"] = [{"Name": n, "Driven": bool(d >= 0),
                        "Source": params.source_specs[d].name if d >= 0 else None}
                       for n, d in zip(mni.region_names, drive)]
    run_dir = _folder(root, sub, ses)
    truth_dir = _folder(truth, sub, ses)
    _write_sources(truth_dir / f"{prefix}_desc-sources_simulation.tsv", sources, params)
    if group in ("eegfmri", "fmri"):
        bold = simulate_bold(rngs[1], params, mni, anatomy, sources, grid)
        rec.bold = _write_bold(run_dir / "func", prefix, params, bold)
        info["BOLD"] = _write_bold_truth(truth_dir / "func", prefix, params, bold, mni)
        for reg, r in zip(info["Regions"], bold.noise_ceiling):
            reg["NoiseCeiling"] = None if not np.isfinite(r) else float(r)
        del bold
    if group in ("eegfmri", "eeg"):
        rec.eeg, info["EEG"] = _simulate_eeg_run(rngs[2:], run_dir / "eeg", truth_dir / "eeg",
                                                 prefix, params, sources, timing, sub, ses)
    rec.truth = write_json(truth_dir / f"{prefix}_desc-truth_simulation.json", info)
    return rec


def _write_sources(dest: Path, sources: Sources, params: SimulationParams) -> None:
    cols: dict[str, Any] = {"time": np.round(sources.times, 6)}
    for k, spec in enumerate(params.source_specs):
        cols[spec.name] = sources.latent[:, k]
        cols[f"{spec.name}_hrf"] = sources.hrf[:, k]
        cols[f"{spec.name}_envelope"] = sources.envelopes[:, k]
    write_tsv(dest, cols)


# --------------------------------------------------------------------------------------- BOLD
def _bold_image(data: np.ndarray, affine: np.ndarray, params: SimulationParams,
                ) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    # Ground-truth floats are stored as scaled int16 (step ≈ max/32767, far below the BOLD
    # change): a third of the size, and gzip compresses them well.
    hdr.set_data_dtype(np.int16)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_zooms(tuple(float(z) for z in img.header.get_zooms()[:3]) + (float(params.tr),))
    hdr.set_dim_info(freq=0, phase=1, slice=2)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def _write_bold(func: Path, prefix: str, params: SimulationParams, bold: BoldRun) -> Path:
    path = func / f"{prefix}_bold.nii.gz"
    save_nifti(_bold_image(bold.data, bold.affine, params), path)
    sidecar = {
        "TaskName": params.task, "RepetitionTime": params.tr,
        "SliceTiming": [float(t) for t in bold.slice_timing],
        "SliceEncodingDirection": "k", "PhaseEncodingDirection": "j-",
        "EchoTime": 0.03, "FlipAngle": 80, "MagneticFieldStrength": 3,
        "TaskDescription": "eyes-closed rest (simulated)",
    }
    if params.mb > 1:
        sidecar["MultibandAccelerationFactor"] = params.mb
    write_json(func / f"{prefix}_bold.json", sidecar)
    return path


def _write_bold_truth(func: Path, prefix: str, params: SimulationParams, bold: BoldRun,
                      mni: MNIModel) -> dict[str, Any]:
    save_nifti(_bold_image(bold.noiseless, bold.affine, params),
               func / f"{prefix}_desc-noiseless_bold.nii.gz")
    write_json(func / f"{prefix}_desc-noiseless_bold.json", {
        "TaskName": params.task, "RepetitionTime": params.tr,
        "SliceTiming": [float(t) for t in bold.slice_timing], "SliceEncodingDirection": "k",
        "SkullStripped": False,
        "Description": "BOLD without thermal or physiological noise, drift or dummy-scan "
                       "overshoot; same grid, motion and slice timing as the raw run"})
    res = params.truth_resolution
    mni_name = f"{prefix}_space-{TEMPLATE_SPACE}_res-{res}_desc-noiseless_bold"
    img = nib.Nifti1Image(bold.noiseless_mni, bold.mni_affine)
    img.header.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((float(res),) * 3 + (float(params.tr),))
    img.set_qform(bold.mni_affine, code=4)
    img.set_sform(bold.mni_affine, code=4)
    save_nifti(img, func / f"{mni_name}.nii.gz")
    write_json(func / f"{mni_name}.json", {
        "TaskName": params.task, "RepetitionTime": params.tr, "SliceTimingCorrected": True,
        "StartTime": bold.slice_time_ref, "SkullStripped": False,
        "Resolution": {str(res): f"{res} mm isotropic grid over the MNI152 field of view"},
        "Description": "noiseless BOLD in MNI space without motion; volume t at "
                       "t*RepetitionTime + StartTime"})
    motion = {c: bold.motion[:, i] for i, c in enumerate(MOTION_COLUMNS)}
    write_tsv(func / f"{prefix}_desc-motion_simulation.tsv", motion)
    write_json(func / f"{prefix}_desc-motion_simulation.json", {
        **{c: {"Units": "mm" if c.startswith("trans") else "rad"} for c in MOTION_COLUMNS},
        "Description": "head pose of each volume: x -> R (x - c) + c + t in scanner RAS mm, "
                       "R = Rz(rot_z) Ry(rot_y) Rx(rot_x), c = MotionCentre; it maps a point of "
                       "the head at volume 0 to its place at volume t (the fixed-to-moving "
                       "transform a registration of volume t onto volume 0 recovers)"})
    save_npy(bold.motion_matrices, func / f"{prefix}_desc-motionmatrices_simulation.npy")
    regional = {n: bold.regional[:, r] for r, n in enumerate(mni.region_names)}
    write_tsv(func / f"{prefix}_desc-regions_simulation.tsv", regional)
    write_json(func / f"{prefix}_desc-regions_simulation.json", {
        "Description": "fractional BOLD change (amplitude x HRF*source) of each region at "
                       "t*RepetitionTime + SliceTimeReference; 0 for un-driven regions",
        "SliceTimeReference": bold.slice_time_ref})
    save_npy(bold.regional_per_slice.astype(np.float32),
             func / f"{prefix}_desc-regionsperslice_simulation.npy")
    return {
        "RepetitionTime": params.tr, "NumberOfVolumes": params.volumes,
        "SliceTiming": [float(t) for t in bold.slice_timing],
        "SliceTimeReference": bold.slice_time_ref, "SliceOrder": params.slice_order,
        "MultibandFactor": params.mb, "DummyScans": params.dummy_scans,
        "DummyFactors": [float(f) for f in bold.dummy_factors],
        "EPIAffine": bold.affine.tolist(), "MotionCentre": bold.motion_centre.tolist(),
        "ThermalNoiseSD": bold.thermal_sd, "BoldAmplitude": params.bold_amplitude,
        "Drift": [float(d) for d in bold.drift],
        "TruthSpace": TEMPLATE_SPACE, "TruthResolution": params.truth_resolution,
    }


# ---------------------------------------------------------------------------------------- EEG
def _simulate_eeg_run(rngs: list[np.random.Generator], eeg_dir: Path, truth_dir: Path,
                      prefix: str, params: SimulationParams, sources: Sources,
                      timing: eegsim.EegTiming, sub: str, ses: str | None,
                      ) -> tuple[Path, dict[str, Any]]:
    names = eegsim.channel_names(params.channels)
    data, etruth = eegsim.simulate_clean(rngs[0], params, sources, timing, names,
                                         extra_rows=1 if params.bcg else 0)
    save_npy(data[: len(names)], truth_dir / f"{prefix}_desc-clean_simulation.npy")
    save_npy(etruth.channel_envelopes, truth_dir / f"{prefix}_desc-envelopes_simulation.npy")
    all_names = names + (["ECG"] if params.bcg else [])
    line = eegsim.add_line_noise(rngs[1], data, timing.sfreq, params.line_freq)
    info: dict[str, Any] = {
        "SamplingFrequency": timing.sfreq, "NumberOfSamples": timing.n_samples,
        "FirstVolumeSample": timing.first_sample,
        "VolumeOnsetSamples": [int(o) for o in timing.onsets],
        "Channels": names, "RecordedChannels": all_names, "Units": "microV",
        "Bands": {b: list(BANDS[b]) for b in etruth.bands},
        "ChannelGroups": etruth.groups,
        "SpreadWeights": etruth.weights.tolist(),
        "LineFrequency": params.line_freq, "LineNoiseAmplitudes": line.tolist(),
        "Gradient": None, "BCG": None,
    }
    if params.gradient_artifact:
        grad = eegsim.add_gradient(rngs[2], data, params, timing, has_ecg=params.bcg)
        info["Gradient"] = {"AmplitudeMicroV": grad["amplitude_uv"],
                            "SlicePeriod": grad["period_s"],
                            "ShotsPerVolume": grad["shots_per_volume"],
                            "JitterSD": grad["jitter_sd_s"],
                            "ShotJitter": np.round(grad["jitter_s"], 9).tolist()}
    if params.bcg:
        bcg = eegsim.add_bcg(rngs[3], data, params, timing, names)
        info["BCG"] = {"RPeakSamples": [int(r) for r in bcg["r_peaks"]],
                       "DelaySeconds": bcg["delay_s"], "AmplitudeMicroV": bcg["amplitude_uv"],
                       "HeartRate": bcg["heart_rate_bpm"]}
    mtype, desc = marker_type_and_description(params.volume_marker)
    info["VolumeMarker"] = {"Type": mtype, "Description": desc}
    vhdr = eeg_dir / f"{prefix}_eeg.vhdr"
    write_brainvision(vhdr, data, timing.sfreq, all_names, reference=eegsim.REFERENCE,
                      events=[(int(o), mtype, desc) for o in timing.onsets], meas_date=MEAS_DATE)
    del data
    _write_eeg_sidecars(eeg_dir, prefix, params, timing, names, all_names, mtype, desc, sub, ses)
    return vhdr, info


def _write_eeg_sidecars(eeg_dir: Path, prefix: str, params: SimulationParams,
                        timing: eegsim.EegTiming, names: list[str], all_names: list[str],
                        mtype: str, desc: str, sub: str, ses: str | None) -> None:
    n_ecg = len(all_names) - len(names)
    write_json(eeg_dir / f"{prefix}_eeg.json", {
        "TaskName": params.task, "TaskDescription": "eyes-closed rest inside the MR scanner "
                                                    "(simulated)",
        "SamplingFrequency": timing.sfreq, "PowerLineFrequency": params.line_freq,
        "EEGReference": eegsim.REFERENCE, "EEGGround": eegsim.GROUND,
        "SoftwareFilters": "n/a", "HardwareFilters": "n/a",
        "Manufacturer": "Brain Products", "ManufacturersModelName": "BrainAmp MR plus",
        "CapManufacturer": "EasyCap", "CapManufacturersModelName": "BrainCap MR",
        "EEGPlacementScheme": "10-20", "EEGChannelCount": len(names), "ECGChannelCount": n_ecg,
        "EOGChannelCount": 0, "EMGChannelCount": 0, "MiscChannelCount": 0,
        "TriggerChannelCount": 0, "RecordingType": "continuous",
        "RecordingDuration": timing.n_samples / timing.sfreq,
    })
    write_tsv(eeg_dir / f"{prefix}_channels.tsv", {
        "name": all_names, "type": ["EEG"] * len(names) + ["ECG"] * n_ecg,
        "units": ["µV"] * len(all_names), "status": ["good"] * len(all_names)})
    onsets = timing.onsets
    write_tsv(eeg_dir / f"{prefix}_events.tsv", {
        "onset": np.round(onsets / timing.sfreq, 6), "duration": np.zeros(onsets.size),
        "trial_type": [f"{mtype}/{desc}"] * onsets.size, "value": [desc] * onsets.size,
        "sample": onsets})
    write_json(eeg_dir / f"{prefix}_events.json", {
        "trial_type": {"Description": "BrainVision marker type/description",
                       "Levels": {f"{mtype}/{desc}": "MR volume trigger (one per volume onset)"}},
        "value": {"Description": "BrainVision marker description"},
        "sample": {"Description": "0-based sample of the marker in the recording"}})
    base = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
    if not (eeg_dir / f"{base}_electrodes.tsv").exists():
        pos = eegsim.positions(names)
        write_tsv(eeg_dir / f"{base}_electrodes.tsv", {
            "name": names, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2],
            "type": ["ring"] * len(names), "material": ["Ag/AgCl"] * len(names)})
        fids = eegsim.montage().fiducials
        write_json(eeg_dir / f"{base}_coordsystem.json", {
            "EEGCoordinateSystem": "CapTrak", "EEGCoordinateUnits": "m",
            "EEGCoordinateSystemDescription": "RAS head frame through the nasion and the "
                                              "pre-auricular points (MNE 'head')",
            "AnatomicalLandmarkCoordinates": {k: fids[k].tolist() for k in ("NAS", "LPA", "RPA")},
            "AnatomicalLandmarkCoordinateSystem": "CapTrak",
            "AnatomicalLandmarkCoordinateUnits": "m"})


# ------------------------------------------------------------------------------- truth extras
def _write_anatomy_truth(truth: Path, sub: str, group: str, anatomy) -> None:
    folder = truth / f"sub-{sub}"
    save_nifti(anatomy.warp_image(), folder / f"sub-{sub}_desc-warp_simulation.nii.gz")
    write_json(folder / f"sub-{sub}_desc-anatomy_simulation.json", {
        "Group": group, "SubjectToMNIAffine": anatomy.affine.tolist(),
        "WarpFile": f"sub-{sub}_desc-warp_simulation.nii.gz",
        "Convention": "head point h (scanner RAS mm at volume 0) -> MNI point p: y = A h, "
                      "p = y + u(y), u = the warp file's displacement (mm, RAS) sampled "
                      "trilinearly at y", "Space": TEMPLATE_SPACE})


def _write_dataset_truth(truth: Path, params: SimulationParams, mni: MNIModel) -> None:
    write_json(truth / "dataset_description.json", {
        "Name": "bids_eeg2fmri simulation ground truth", "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": SIMULATOR_NAME, "Version": __version__, "CodeURL": CODE_URL,
                         "Description": "ground truth of the simulated raw dataset two "
                                        "folders up"}],
    })
    atomic_write_text(truth / ".bidsignore", "\n".join(_TRUTH_IGNORE) + "\n")
    atomic_write_text(truth / "README", "Ground truth of the simulated dataset: see "
                      "docs/simulation.md of bids_eeg2fmri for every file.\n")
    write_json(truth / "simulation.json", {"Params": params.to_dict(),
                                          "SimulatorVersion": __version__})
    drive = region_drive(params, len(mni.region_names))
    write_tsv(truth / "regions.tsv", {
        "index": np.arange(1, len(mni.region_names) + 1), "name": list(mni.region_names),
        "driven": ["true" if d >= 0 else "false" for d in drive],
        "source": [params.source_specs[d].name if d >= 0 else "n/a" for d in drive]})
    img = nib.Nifti1Image(mni.labels, mni.affine)
    img.set_qform(mni.affine, code=4)
    img.set_sform(mni.affine, code=4)
    save_nifti(img, truth / f"space-{TEMPLATE_SPACE}_res-2_desc-regions_dseg.nii.gz")
    img = nib.Nifti1Image(mni.contrast, mni.affine)
    img.set_qform(mni.affine, code=4)
    img.set_sform(mni.affine, code=4)
    save_nifti(img, truth / f"space-{TEMPLATE_SPACE}_res-2_desc-epicontrast_simulation.nii.gz")

