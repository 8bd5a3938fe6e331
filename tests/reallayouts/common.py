"""Writers shared by the real-layout fixture builders.

Each builder rebuilds one public dataset's tree for two subjects from
``../shared/realdata/layouts/<ds>/`` : every path of ``FILES.tsv`` that belongs to the top level or
to those subjects, text files copied verbatim from ``tree/``, data files generated with real
writers (nibabel, pybv, eeglabio) and data files a run does not need left as DataLad leaves them
before ``datalad get``: broken symlinks into ``.git/annex/objects``.
"""

from __future__ import annotations

import hashlib
import zlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage, signal

LAYOUTS = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "layouts"
BASE_EPI = LAYOUTS.parent / "bold" / "dcm_qa_stc" / "Siemens_FMRI_AX_ASC_2.nii"


@dataclass(frozen=True)
class Size:
    """How much data a fixture holds.

    Attributes
    ----------
    volumes
        BOLD volumes per run (the real runs have 300–400).
    inplane
        In-plane matrix of the BOLD images (slices keep the sidecar's SliceTiming count).
    lead, tail
        Seconds of EEG recorded before the first and after the last volume.
    """

    volumes: int
    inplane: int
    lead: float = 2.0
    tail: float = 2.0


SIZES = {"small": Size(volumes=24, inplane=28), "realistic": Size(volumes=150, inplane=48)}


@dataclass(frozen=True)
class Entry:
    """One row of FILES.tsv."""

    path: str
    present: bool
    size: int


def read_files(ds: str) -> list[Entry]:
    """Rows of ``layouts/<ds>/FILES.tsv``."""
    rows = (LAYOUTS / ds / "FILES.tsv").read_text().splitlines()[1:]
    out = []
    for line in rows:
        path, content, size = line.split("\t")
        out.append(Entry(path, content == "present", int(size)))
    return out


def select(entries: list[Entry], subjects: tuple[str, ...]) -> list[Entry]:
    """Rows of the top level and of ``subjects`` (paths naming another subject are dropped)."""
    keep = []
    for e in entries:
        subs = set(re.findall(r"sub-([A-Za-z0-9]+)", e.path))
        if not subs or subs <= set(subjects):
            keep.append(e)
    return keep


def copy_present(ds: str, root: Path, entries: list[Entry]) -> list[Entry]:
    """Copy the verbatim text files; return the entries still to be filled."""
    tree = LAYOUTS / ds / "tree"
    todo = []
    for e in entries:
        src = tree / e.path
        if e.present and src.is_file():
            dst = root / e.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            todo.append(e)
    return todo


def annex_link(root: Path, rel: str, size: int) -> Path:
    """A broken symlink as left by ``datalad clone`` for content not fetched yet."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(rel.encode()).hexdigest()
    ext = "".join(Path(rel).suffixes)
    key = f"MD5E-s{size}--{digest}{ext}"
    depth = len(Path(rel).parts) - 1
    target = Path(*([".."] * depth), ".git", "annex", "objects", digest[:2], digest[2:4], key, key)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)
    return path


# --------------------------------------------------------------------------------------- BOLD
def base_epi(inplane: int, n_slices: int) -> np.ndarray:
    """Mean image of the real Siemens EPI, resampled to ``inplane`` × ``inplane`` × ``n_slices``."""
    img = nib.load(BASE_EPI)
    mean = np.asarray(img.dataobj, dtype=np.float32).mean(axis=3)
    factors = (inplane / mean.shape[0], inplane / mean.shape[1], n_slices / mean.shape[2])
    return np.clip(ndimage.zoom(mean, factors, order=1), 0, None)


def write_bold(path: Path, *, n_slices: int, n_volumes: int, tr: float, inplane: int,
               fov: float = 220.0, slice_thickness: float = 4.0, seed: int = 0,
               pixdim_tr: float | None = None) -> Path:
    """Write a BOLD series built from the real EPI: slow drift, a little motion-free noise.

    ``pixdim_tr`` writes another TR into the NIfTI header than the sidecar's (some converters do).
    """
    rng = np.random.default_rng(seed)
    base = base_epi(inplane, n_slices)
    t = np.arange(n_volumes)
    drift = 1 + 0.01 * np.sin(2 * np.pi * t / max(n_volumes, 8))
    signal_ = 0.005 * rng.standard_normal((1, 1, 1, n_volumes)).astype(np.float32)
    noise = rng.standard_normal((*base.shape, n_volumes), dtype=np.float32) * 0.01 * base.mean()
    data = base[..., None] * (drift + signal_) + noise
    zoom = fov / inplane
    affine = np.diag([zoom, zoom, slice_thickness, 1.0])
    affine[:3, 3] = -np.array([zoom * inplane / 2, zoom * inplane / 2 - 10, slice_thickness * n_slices / 2 - 15])
    img = nib.Nifti1Image(np.clip(data, 0, None).astype(np.int16), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr if pixdim_tr is None else pixdim_tr
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


# ---------------------------------------------------------------------------------------- EEG
@dataclass
class Marker:
    """One BrainVision marker: type, description, sample (0-based), size."""

    type: str
    description: str
    sample: int
    size: int = 1


def synth_eeg(n_eeg: int, n_times: int, sfreq: float, *, volume_samples: np.ndarray | None,
              shots_per_volume: int = 16, ecg: bool = True, seed: int = 0,
              ) -> tuple[np.ndarray, np.ndarray]:
    """EEG in µV: 1/f-like background, alpha, BCG locked to heartbeats, gradient artifact.

    Returns the ``(n_eeg [+1 ECG], n_times)`` data and the R-peak samples.
    """
    rng = np.random.default_rng(seed)
    # Background drawn at a tenth of the rate and held (fixtures must build in seconds), plus a
    # 10-s block of white amplifier noise repeated along the run.
    dec = max(1, int(sfreq // 250))
    low = rng.standard_normal((n_eeg, n_times // dec + 1), dtype=np.float32)
    b, a = signal.butter(1, 2.0 / (sfreq / dec / 2))
    data = np.repeat((signal.lfilter(b, a, low, axis=1) * 15).astype(np.float32), dec,
                     axis=1)[:, :n_times]
    block = rng.standard_normal((n_eeg, min(n_times, int(10 * sfreq) + 7)), dtype=np.float32)
    data += np.tile(block * 2, (1, -(-n_times // block.shape[1])))[:, :n_times]
    t = np.arange(n_times, dtype=np.float32) / sfreq
    weights = rng.uniform(0.3, 1.0, (n_eeg, 1)).astype(np.float32)
    data += weights * 12 * np.sin(2 * np.pi * 10.0 * t + rng.uniform(0, 6.28))
    # Heartbeats at ~66 bpm with jitter; the BCG follows each R peak by ~0.2 s.
    beats = np.cumsum(rng.uniform(0.82, 0.98, int(n_times / sfreq / 0.8) + 2))
    peaks = (beats[beats < n_times / sfreq - 0.5] * sfreq).astype(np.int64)
    width = int(0.5 * sfreq)
    tau = np.arange(width) / sfreq
    bcg = np.sin(2 * np.pi * 2.0 * (tau - 0.2)) * np.exp(-((tau - 0.3) / 0.12) ** 2)
    train = np.zeros(n_times, np.float32)
    train[peaks] = 1.0
    pulse = signal.fftconvolve(train, bcg.astype(np.float32))[:n_times].astype(np.float32)
    data += rng.uniform(-40, 40, (n_eeg, 1)).astype(np.float32) * pulse
    if volume_samples is not None and len(volume_samples) > 1:
        period = int(np.median(np.diff(volume_samples)))
        shot = max(period // shots_per_volume, 4)
        wave = (np.sign(np.sin(2 * np.pi * np.arange(shot) / shot * 3)) * 800).astype(np.float32)
        one = np.resize(wave, period)
        for s0 in volume_samples:
            seg = slice(int(s0), min(int(s0) + period, n_times))
            data[:, seg] += weights * one[:seg.stop - seg.start]
    if not ecg:
        return data, peaks
    qrs = np.exp(-((np.arange(-25, 26) / sfreq) / 0.01) ** 2).astype(np.float32) * 800
    ecg_ch = signal.fftconvolve(train, qrs)[25:25 + n_times].astype(np.float32)
    ecg_ch += rng.standard_normal(n_times, dtype=np.float32) * 10
    return np.vstack([data, ecg_ch[None]]), peaks


RECORDER_VHDR = "Brain Vision Data Exchange Header File Version 1.0\n; Data created by the Vision Recorder\n"
ANALYZER_VHDR = ("Brain Vision Data Exchange Header File Version 2.0\n"
                 "; Data created from history path: {history}\n")


def write_brainvision(vhdr: Path, data_uv: np.ndarray, sfreq: float, ch_names: list[str],
                      markers: list[Marker], *, vendor: str = "recorder",
                      history: str = "Raw Data/MR Correction/CB Correction/Export",
                      data_ext: str = ".eeg", meas_date: str = "20170608151959000000",
                      resolution: float = 0.1) -> Path:
    """Write a BrainVision triplet with pybv, then put the vendor's own header and marker text.

    ``vendor="recorder"``: header version 1.0, ``INT_16`` at ``resolution`` µV with Recorder's
    amplifier/impedance comment block, markers version 1.0 with a ``New Segment``.
    ``"analyzer"``: version 2.0, ``IEEE_FLOAT_32`` (BrainVision Analyzer export, ``data_ext``
    ``.dat`` as Analyzer names it).
    """
    import pybv

    vhdr.parent.mkdir(parents=True, exist_ok=True)
    stem = vhdr.name[:-len(".vhdr")]
    fmt = "binary_int16" if vendor == "recorder" else "binary_float32"
    pybv.write_brainvision(data=data_uv * 1e-6, sfreq=sfreq, ch_names=ch_names, fname_base=stem,
                           folder_out=str(vhdr.parent), events=None, resolution=resolution, unit="µV",
                           fmt=fmt, overwrite=True)
    # pybv's first two lines name pybv; the vendors' name their software
    body = "\n".join(vhdr.read_text(encoding="utf-8").splitlines()[2:])
    first = RECORDER_VHDR if vendor == "recorder" else ANALYZER_VHDR.format(history=history)
    if data_ext != ".eeg":
        os.replace(vhdr.with_suffix(".eeg"), vhdr.with_suffix(data_ext))
        body = body.replace(f"DataFile={stem}.eeg", f"DataFile={stem}{data_ext}")
    if vendor == "analyzer":
        body = body.replace("DataOrientation=MULTIPLEXED",
                            "DataOrientation=MULTIPLEXED\nDataType=TIMEDOMAIN")
    else:
        body = body.split("[Comment]")[0] + recorder_comment(ch_names, sfreq, resolution)
    vhdr.write_text(first + "\n" + body.lstrip("\n") + "\n", encoding="utf-8")
    first_mk = ("Brain Vision Data Exchange Marker File, Version 1.0" if vendor == "recorder"
                else "Brain Vision Data Exchange Marker File Version 2.0")
    mk = [first_mk, "", "[Common Infos]", "Codepage=UTF-8", f"DataFile={stem}{data_ext}", "",
          "[Marker Infos]",
          "; Each entry: Mk<Marker number>=<Type>,<Description>,<Position in data points>,",
          "; <Size in data points>, <Channel number (0 = marker is related to all channels)>",
          "; Fields are delimited by commas, some fields might be omitted (empty).",
          '; Commas in type or description text are coded as "\\1".',
          f"Mk1=New Segment,,1,1,0,{meas_date}"]
    for i, m in enumerate(sorted(markers, key=lambda m: m.sample), start=2):
        mk.append(f"Mk{i}={m.type},{m.description},{m.sample + 1},{m.size},0")
    vhdr.with_suffix(".vmrk").write_text("\n".join(mk) + "\n", encoding="utf-8")
    return vhdr


def recorder_comment(ch_names: list[str], sfreq: float, resolution: float,
                     time: str = "14:35:40") -> str:
    """The ``[Comment]`` block BrainVision Recorder writes: amplifier set-up (BrainAmp MR plus:
    10 s time constant, 250 Hz high cut-off) and the impedances measured before recording."""
    rng = np.random.default_rng(len(ch_names))
    lines = ["[Comment]", "", "A m p l i f i e r  S e t u p", "============================",
             f"Number of channels: {len(ch_names)}", f"Sampling Rate [Hz]: {sfreq:g}",
             f"Sampling Interval [µS]: {1e6 / sfreq:g}", "", "Channels", "--------",
             "#     Name      Phys. Chn.    Resolution / Unit   Low Cutoff [s]   "
             "High Cutoff [Hz]   Notch [Hz]"]
    for i, name in enumerate(ch_names, 1):
        lines.append(f"{i:<5d} {name:<11s} {i:<16d} {resolution:g} µV{'':<12s} 10"
                     f"{'':<15s} 250{'':<14s} Off")
    lines += ["", "S o f t w a r e  F i l t e r s", "==============================", "Disabled",
              "", "", "Data Electrodes Selected Impedance Measurement Range: 0 - 100 kOhm",
              "Ground Electrode Selected Impedance Measurement Range: 0 - 10 kOhm",
              "Reference Electrode Selected Impedance Measurement Range: 0 - 10 kOhm",
              f"Impedance [kOhm] at {time} :"]
    lines += [f"{n + ':':<12s} {int(rng.integers(2, 20))}" for n in ch_names]
    lines += ["Ref:         3", "Gnd:         2", ""]
    return "\n".join(lines)


def volume_markers(first: int, n: int, step: float, *, type_: str = "Response",
                   description: str = "R128") -> tuple[np.ndarray, list[Marker]]:
    """Sample of every volume trigger and the markers (one per volume)."""
    samples = np.round(first + np.arange(n) * step).astype(np.int64)
    return samples, [Marker(type_, description, int(s)) for s in samples]


def recording(sz: Size, n_vol: int, tr: float, sfreq: float
              ) -> tuple[int, int, np.ndarray, list[Marker]]:
    """First volume sample, length, volume samples and ``Response/R128`` markers of a raw run."""
    first = int(sz.lead * sfreq)
    n_times = first + int((n_vol * tr + sz.tail) * sfreq)
    samples, markers = volume_markers(first, n_vol, tr * sfreq)
    return first, n_times, samples, markers


def write_eeglab_epochs(path: Path, data_uv: np.ndarray, sfreq: float, ch_names: list[str],
                        tmin: float, event_types: list[str]) -> Path:
    """An epoched EEGLAB ``.set``/``.fdt`` pair (eeglabio), event ``type`` strings per epoch."""
    from eeglabio.epochs import export_set

    path.parent.mkdir(parents=True, exist_ok=True)
    n_ep, _, n_t = data_uv.shape
    event_id = {t: i + 1 for i, t in enumerate(dict.fromkeys(event_types))}
    events = np.column_stack([np.arange(n_ep) * n_t + int(-tmin * sfreq), np.zeros(n_ep, int),
                              [event_id[t] for t in event_types]])
    export_set(str(path), data_uv * 1e-6, sfreq, events, tmin, tmin + (n_t - 1) / sfreq,
               ch_names, event_id=event_id, precision="single")
    return path


def write_text(path: Path, text: str) -> Path:
    """Write a generated text file (UTF-8), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


COMPANIONS = (".eeg", ".vmrk", ".dat", ".fdt")


def fill(root: Path, todo: list[Entry], make, unfetched: tuple[str, ...] = ()) -> None:
    """Generate or annex-link every entry still missing.

    ``make(entry)`` writes the file (and its companions, e.g. a BrainVision header writes the data
    and marker files) and returns True, or returns False for a file no run reads. Entries whose
    name contains one of ``unfetched``, files ``make`` declines and companions not written stay
    broken annex symlinks, as in a DataLad clone before ``datalad get``.
    """
    for e in sorted(todo, key=lambda e: e.path.endswith(COMPANIONS)):
        path = root / e.path
        if path.exists() or path.is_symlink():
            continue
        if any(u in Path(e.path).name for u in unfetched) or e.path.endswith(COMPANIONS) \
                or not make(e):
            annex_link(root, e.path, e.size)


def seed_of(*parts: str) -> int:
    """A stable seed from names (``hash`` of a str changes between processes)."""
    return zlib.crc32("_".join(parts).encode())
