"""Per-participant and group HTML reports (jinja2), figures as SVG files beside them.

Layout, as in fMRIPrep::

    OUT/sub-01.html                      links to sub-01/figures/*.svg (relative paths)
    OUT/sub-01/figures/<src>_desc-<figure>_<bold|eeg>.svg
    OUT/group.html                       links to group/figures/*.svg

The participant report is built from the derivative files alone (plus the raw BOLD/EEG for the
dummy-scan and before/after-correction figures), so it can be regenerated at any time. A
derivative that is missing, or a figure that cannot be drawn, becomes a "not available because …"
note in its place and an entry in the report's errors section; the report itself is always
written.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from .._version import __version__
from ..bids.derivatives import (SOURCE_ENTITIES, atomic_write_text, build_path, parse_entities,
                                sidecar_path)

LOGGER = logging.getLogger("bids_eeg2fmri.reports")
FD_THRESHOLD_MM = 0.5
# Share of volumes above the FD threshold from which a run is flagged.
HIGH_MOTION_FRACTION = 0.2

# Which derivative plays which role in a run: (datatype, required entities, suffix, extensions).
_ROLES: dict[str, tuple[str, dict[str, str], str, tuple[str, ...]]] = {
    "boldref": ("func", {"space": "boldref"}, "boldref", (".nii.gz", ".nii")),
    "confounds": ("func", {"desc": "confounds"}, "timeseries", (".tsv",)),
    "preproc_bold": ("func", {"desc": "preproc"}, "bold", (".nii.gz", ".nii")),
    "brain_mask": ("func", {"desc": "brain"}, "mask", (".nii.gz", ".nii")),
    "mni_xfm": ("func", {"from": "boldref"}, "xfm", (".nii.gz", ".h5")),
    "model_bold": ("func", {"desc": "model"}, "bold", (".nii.gz", ".nii")),
    "synth_bold": ("func", {"desc": "synth"}, "bold", (".nii.gz", ".nii")),
    "preproc_eeg": ("eeg", {"desc": "preproc"}, "eeg", (".vhdr", ".fif")),
    "spectrogram": ("eeg", {"desc": "stft"}, "spectrogram", (".h5",)),
    "bandpower": ("eeg", {"desc": "bandpower"}, "timeseries", (".tsv",)),
    "synth_spectrogram": ("eeg", {"desc": "synth"}, "spectrogram", (".h5",)),
}


# ----------------------------------------------------------------------------- data model
@dataclass
class FigureItem:
    """One figure slot of a report section.

    Attributes
    ----------
    title
        Heading.
    caption
        How to read it.
    src
        Path of the SVG relative to the HTML file, or ``None`` when not available.
    note
        Why the figure is not available (shown instead of it).
    """

    title: str
    caption: str
    src: str | None = None
    note: str | None = None


@dataclass
class RunSection:
    """Everything the report shows about one run (``<src>``)."""

    name: str
    files: dict[str, Path]
    facts: list[tuple[str, str]] = field(default_factory=list)
    figures: list[FigureItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- jinja
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bids_eeg2fmri", "reports/templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    return env


def _fmt(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits, n/a for missing, others as text."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(float(value)) else f"{float(value):.{digits}g}"
    return str(value)


# ----------------------------------------------------------------------------- discovery
def _subject_label(subject: str) -> str:
    label = str(subject)
    label = label[4:] if label.startswith("sub-") else label
    if not re.fullmatch(r"[A-Za-z0-9]+", label):
        raise ValueError(f"not a BIDS subject label: {subject!r}")
    return label


def _source_key(path: Path) -> str:
    ents = parse_entities(path)
    return "_".join(f"{k}-{ents[k]}" for k in SOURCE_ENTITIES if k in ents)


def find_runs(out_dir: str | os.PathLike, subject: str) -> dict[str, dict[str, Path]]:
    """Derivative files of one participant, grouped by source run.

    Parameters
    ----------
    out_dir
        The derivatives dataset.
    subject
        Label with or without ``sub-``.

    Returns
    -------
    dict
        ``<src>`` (e.g. ``sub-01_task-rest_run-1``) → role → path, with roles ``boldref``,
        ``confounds``, ``preproc_bold``, ``brain_mask``, ``mni_xfm``, ``model_bold``,
        ``synth_bold``, ``preproc_eeg``, ``spectrogram``, ``bandpower``, ``synth_spectrogram``.
    """
    root = Path(out_dir) / f"sub-{_subject_label(subject)}"
    runs: dict[str, dict[str, Path]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        datatype = path.parent.name
        ents = parse_entities(path)
        for role, (dtype, need, suffix, exts) in _ROLES.items():
            if datatype == dtype and ents["suffix"] == suffix and ents["extension"] in exts \
                    and all(ents.get(k) == v for k, v in need.items()):
                runs.setdefault(_source_key(path), {})[role] = path
    return dict(sorted(runs.items()))


def _source_dataset(out_dir: Path) -> Path | None:
    """The raw dataset from ``SourceDatasets`` of ``dataset_description.json`` (file:// URL)."""
    desc = out_dir / "dataset_description.json"
    if not desc.exists():
        return None
    try:
        sources = json.loads(desc.read_text()).get("SourceDatasets") or []
    except json.JSONDecodeError:
        return None
    for src in sources:
        url = urlparse(str(src.get("URL", "")))
        if url.scheme == "file" and Path(unquote(url.path)).is_dir():
            return Path(unquote(url.path))
    return None


def _raw_file(bids_dir: Path | None, key: str, datatype: str, suffix: str,
              sources: Sequence[str] = ()) -> Path | None:
    """Locate a run's raw file: a sidecar ``Sources`` entry, else a search in the raw dataset."""
    for s in sources:
        s = str(s)
        if s.startswith("bids:raw:") and bids_dir is not None:
            cand = bids_dir / s[len("bids:raw:"):]
        else:
            cand = Path(s)
        if cand.is_file():
            return cand
    if bids_dir is None:
        return None
    ents = dict(p.split("-", 1) for p in key.split("_"))
    folder = bids_dir / f"sub-{ents['sub']}"
    if "ses" in ents:
        folder = folder / f"ses-{ents['ses']}"
    for cand in sorted((folder / datatype).glob(f"{key}_{suffix}.*")):
        if cand.suffix not in (".json", ".tsv") and not cand.name.endswith((".vmrk", ".eeg")):
            return cand
    return None


def _orphan_sidecar(out: Path, key: str, desc: str, suffix: str) -> dict[str, Any]:
    """The sidecar of a derivative whose data file is gone (users delete large 4-D series)."""
    ents = dict(part.split("-", 1) for part in key.split("_"))
    folder = out / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "")
    folder = folder / ("func" if suffix == "bold" else "eeg")
    for cand in sorted(folder.glob(f"{key}_*desc-{desc}_{suffix}.json")):
        try:
            return json.loads(cand.read_text())
        except json.JSONDecodeError:
            continue
    return {}


def _json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    side = sidecar_path(path)
    try:
        return json.loads(side.read_text()) if side.exists() else {}
    except json.JSONDecodeError:
        return {}


# ----------------------------------------------------------------------------- participant
def write_participant_report(out_dir: str | os.PathLike, subject: str, *,
                             bids_dir: str | os.PathLike | None = None,
                             fd_threshold: float = FD_THRESHOLD_MM) -> Path:
    """Write ``OUT/sub-XX.html`` with its figures in ``OUT/sub-XX/figures/``.

    Parameters
    ----------
    out_dir
        The derivatives dataset (participant level already run).
    subject
        Participant label, with or without ``sub-``.
    bids_dir
        The raw dataset, for the dummy-scan and EEG before/after figures; default the
        ``file://`` URL in ``dataset_description.json``'s ``SourceDatasets``.
    fd_threshold
        Framewise-displacement threshold (mm) for the motion figure and warnings.

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    out = Path(out_dir)
    label = _subject_label(subject)
    raw_root = Path(bids_dir) if bids_dir is not None else _source_dataset(out)
    fig_dir = out / f"sub-{label}" / "figures"
    sections = [_run_section(out, key, files, fig_dir, raw_root, fd_threshold)
                for key, files in find_runs(out, label).items()]
    crashes = _crash_messages(out, label)
    summary = _participant_summary(sections)
    html = _environment().get_template("participant.html").render(
        subject=label, sections=sections, summary=summary, crashes=crashes,
        errors=[(s.name, e) for s in sections for e in s.errors],
        warnings=[(s.name, w) for s in sections for w in s.warnings],
        version=__version__, date=_now(), bids_dir=str(raw_root) if raw_root else None)
    return atomic_write_text(out / f"sub-{label}.html", html)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _figure_path(fig_dir: Path, key: str, desc: str, suffix: str) -> Path:
    ents = dict(part.split("-", 1) for part in key.split("_"))
    name = build_path(fig_dir, ents, suffix=suffix, extension=".svg", datatype="figures",
                      desc=desc).name
    return fig_dir / name


def _make_figure(section: RunSection, title: str, caption: str, path: Path,
                 draw: Callable[[], Any], missing: str | None = None) -> None:
    """Draw one figure into ``section``; a missing input or a failure becomes a note."""
    if missing:
        section.figures.append(FigureItem(title, caption, note=f"Not available because {missing}."))
        return
    try:
        draw()
    except Exception as exc:  # a broken input must not cost the whole report
        LOGGER.warning("report figure %r of %s failed: %s", title, section.name, exc,
                       exc_info=True)
        msg = f"{title}: {type(exc).__name__}: {exc}"
        section.errors.append(msg)
        section.figures.append(FigureItem(title, caption,
                                          note=f"Not available because drawing it failed "
                                               f"({type(exc).__name__}: {exc})."))
        return
    section.figures.append(FigureItem(title, caption,
                                      src=f"{path.parent.parent.name}/figures/{path.name}"))


def _missing(files: Mapping[str, Path], roles: Sequence[str], what: str) -> str | None:
    lack = [r for r in roles if r not in files]
    if not lack:
        return None
    names = ", ".join(_ROLE_NAMES[r] for r in lack)
    return f"{what} needs {names}, which this run's derivatives do not contain"


_ROLE_NAMES = {
    "boldref": "the boldref (space-boldref_boldref)",
    "confounds": "the confounds table (desc-confounds_timeseries.tsv)",
    "preproc_bold": "the preprocessed BOLD (desc-preproc_bold)",
    "brain_mask": "the brain mask (desc-brain_mask)",
    "mni_xfm": "the boldref→MNI transform (from-boldref_to-MNI152NLin2009aSym_xfm)",
    "model_bold": "the model-ready BOLD (desc-model_bold)",
    "synth_bold": "a synthesized BOLD (desc-synth_bold)",
    "preproc_eeg": "the preprocessed EEG (desc-preproc_eeg.vhdr or .fif)",
    "spectrogram": "the spectrogram (desc-stft_spectrogram.h5)",
    "bandpower": "the band-power table (desc-bandpower_timeseries.tsv)",
    "synth_spectrogram": "a synthesized spectrogram (desc-synth_spectrogram.h5)",
}


def _run_section(out: Path, key: str, files: dict[str, Path], fig_dir: Path,
                 raw_root: Path | None, fd_threshold: float) -> RunSection:
    from . import figures as F

    sec = RunSection(key, files)
    bold_meta = _json(files.get("preproc_bold")) or _orphan_sidecar(out, key, "preproc", "bold")
    eeg_meta = _json(files.get("preproc_eeg")) or _orphan_sidecar(out, key, "preproc", "eeg")
    tr = bold_meta.get("RepetitionTime") or eeg_meta.get("RepetitionTime")
    tr = float(tr) if tr else None
    has_fmri = any(r in files for r in ("preproc_bold", "confounds", "boldref"))
    has_eeg = any(r in files for r in ("preproc_eeg", "spectrogram"))
    sec.facts.append(("modalities", " + ".join(m for m, h in (("fMRI", has_fmri), ("EEG", has_eeg))
                                               if h) or "none"))
    if tr:
        sec.facts.append(("repetition time", f"{tr:g} s"))

    # ---------------------------------------------------------------- fMRI
    if has_fmri:
        _fmri_facts(sec, files, bold_meta, fd_threshold)
        f = files
        _make_figure(
            sec, "Registration to MNI152NLin2009aSym",
            "The boldref resampled into template space through the run's transform (top three "
            "rows) and the template (bottom three rows); the red line is the run's brain mask, "
            "drawn identically on both. The contour should follow the brain outline in both.",
            p := _figure_path(fig_dir, key, "registration", "bold"),
            lambda: F.plot_registration(f["boldref"], f["mni_xfm"], f["brain_mask"], p),
            _missing(files, ["boldref", "mni_xfm", "brain_mask"], "this figure"))
        _make_figure(
            sec, "Head motion",
            f"Rigid-body parameters of every kept volume relative to the boldref (translations in "
            f"mm, rotations in degrees) and framewise displacement (Power et al., 2012); dashed "
            f"line at {fd_threshold:g} mm.",
            p2 := _figure_path(fig_dir, key, "motion", "bold"),
            lambda: F.plot_motion(f["confounds"], p2, fd_threshold=fd_threshold, tr=tr),
            _missing(files, ["confounds"], "this figure"))
        _make_figure(
            sec, "Carpet plot",
            "Every row is a brain voxel of the preprocessed series (a random subset, grouped by "
            "template tissue class), linearly detrended and z-scored; columns are volumes. "
            "Vertical bands that line up with FD or DVARS peaks are motion artefacts.",
            p3 := _figure_path(fig_dir, key, "carpet", "bold"),
            lambda: F.plot_carpet(f["preproc_bold"], f["brain_mask"], p3,
                                  confounds=f.get("confounds"), tr=tr),
            _missing(files, ["preproc_bold", "brain_mask"], "this figure"))
        dummy = bold_meta.get("DummyScans") or {}
        n_dummy = int(dummy.get("Count", bold_meta.get("NumberOfVolumesDiscardedByUser", 0)) or 0)
        raw_bold = _raw_file(raw_root, key, "func", "bold", bold_meta.get("Sources", []))
        _make_figure(
            sec, "Dummy scans",
            "Global signal of the raw run (mean of the voxels brighter than average). Leading "
            "volumes still approaching steady-state magnetisation are brighter; the shaded ones "
            "were discarded from every output.",
            p4 := _figure_path(fig_dir, key, "dummy", "bold"),
            lambda: F.plot_dummy_scans(raw_bold, n_dummy, p4, tr=tr,
                                       source=str(dummy.get("Source", ""))),
            "the preprocessed BOLD sidecar (which records the dummy scans) is missing"
            if not bold_meta else (
                "the raw BOLD file was not found (pass bids_dir, or keep the raw dataset where "
                "dataset_description.json's SourceDatasets points)" if raw_bold is None else None))

    # ---------------------------------------------------------------- EEG
    if has_eeg:
        _eeg_facts(sec, eeg_meta)
        f = files
        raw_eeg = _raw_file(raw_root, key, "eeg", "eeg", eeg_meta.get("Sources", []))
        missing = _missing(files, ["preproc_eeg"], "this figure") or (
            "the raw EEG file was not found (pass bids_dir, or keep the raw dataset where "
            "dataset_description.json's SourceDatasets points)" if raw_eeg is None else None)
        _make_figure(
            sec, "EEG before and after artefact correction",
            "A few seconds around the middle volume: the raw recording (top) and the "
            "preprocessed EEG after gradient (AAS) and ballistocardiogram (PCA-OBS) correction, "
            "filtering and re-referencing (bottom), with the ECG; right, the spectra of both "
            "windows. Gradient artefacts show as peaks at the slice and volume frequencies.",
            p5 := _figure_path(fig_dir, key, "eegclean", "eeg"),
            lambda: F.plot_eeg_correction(raw_eeg, f["preproc_eeg"], p5), missing)
        _make_figure(
            sec, "Spectrogram and band power",
            "Per-TR short-time Fourier transform averaged over channels (top) and band power per "
            "volume averaged over channels (bottom, log scale), both on the EEG's time axis with "
            "the volume onsets marked.",
            p6 := _figure_path(fig_dir, key, "spectrogram", "eeg"),
            lambda: F.plot_spectrogram(f["spectrogram"], p6, bandpower=f.get("bandpower")),
            _missing(files, ["spectrogram"], "this figure"))

    # ---------------------------------------------------------------- synthesized outputs
    if "synth_bold" in files:
        try:
            _synth_bold_figures(sec, files, fig_dir, key, tr)
        except Exception as exc:  # an unreadable synthesized file must not cost the report
            LOGGER.warning("synthesized BOLD of %s unreadable: %s", key, exc, exc_info=True)
            sec.errors.append(f"synthesized BOLD: {type(exc).__name__}: {exc}")
    if "synth_spectrogram" in files:
        f = files
        _make_figure(
            sec, "Synthesized spectrogram (fMRI→EEG model)",
            "The spectrogram predicted from this run's BOLD, averaged over channels; compare with "
            "the measured spectrogram above.",
            p7 := _figure_path(fig_dir, key, "synthspectrogram", "eeg"),
            lambda: F.plot_spectrogram(f["synth_spectrogram"], p7))
        model = _json(files["synth_spectrogram"]).get("Model", {})
        if model:
            sec.facts.append(("fMRI→EEG model", str(model.get("Name", "unknown"))))
    return sec


def _fmri_facts(sec: RunSection, files: Mapping[str, Path], meta: Mapping[str, Any],
                fd_threshold: float) -> None:
    dummy = meta.get("DummyScans") or {}
    if meta:
        count = dummy.get("Count", meta.get("NumberOfVolumesDiscardedByUser", "n/a"))
        sec.facts.append(("dummy scans", f"{count}"
                          + (f" ({dummy['Source']})" if dummy.get("Source") else "")))
        stc = meta.get("SliceTimingCorrected")
        sec.facts.append(("slice-timing correction", _fmt(stc) if stc is not None else "n/a"))
        if stc is False:
            sec.warnings.append("slice-timing correction was skipped (no SliceTiming in the BOLD "
                                "metadata)")
        reg = meta.get("Registration") or {}
        if reg:
            sec.facts.append(("registration", f"{reg.get('Method', 'n/a')} "
                                              f"({reg.get('Path', '')})".strip()))
    if "preproc_bold" in files:
        import nibabel as nib
        shape = nib.load(os.fspath(files["preproc_bold"])).shape
        sec.facts.append(("preprocessed volumes", str(shape[3] if len(shape) > 3 else 1)))
    if "confounds" in files:
        df = pd.read_csv(files["confounds"], sep="\t", na_values=["n/a"])
        fd = df.get("framewise_displacement", pd.Series(dtype=float)).to_numpy(float)
        if np.isfinite(fd).any():
            mean_fd = float(np.nanmean(fd))
            above = int(np.nansum(fd > fd_threshold))
            sec.facts.append(("mean FD", f"{mean_fd:.3f} mm"))
            sec.facts.append((f"volumes with FD > {fd_threshold:g} mm", f"{above} of {len(fd)}"))
            if above > HIGH_MOTION_FRACTION * len(fd):
                sec.warnings.append(f"high motion: {above} of {len(fd)} volumes have FD above "
                                    f"{fd_threshold:g} mm")
    else:
        sec.warnings.append("no confounds table: motion could not be assessed")


def _eeg_facts(sec: RunSection, meta: Mapping[str, Any]) -> None:
    if not meta:
        sec.warnings.append("the preprocessed EEG sidecar is missing: what cleaning did is "
                            "unknown")
        return
    not_applied = (None, "none", "off")
    grad = meta.get("GradientCorrection") or {}
    if grad:
        ratio = (f", artefact ratio {_fmt(grad.get('template_ratio'))}"
                 if grad.get("template_ratio") is not None else "")
        requested = f"requested {grad.get('Requested', 'n/a')}{ratio}"
        sec.facts.append(("gradient correction",
                          f"not applied ({requested})" if grad.get("method") in not_applied
                          else f"{grad['method']} ({requested})"))
    bcg = meta.get("BCGCorrection") or {}
    if bcg:
        if bcg.get("method") in not_applied:
            sec.facts.append(("BCG correction", f"not applied (requested "
                                                f"{bcg.get('Requested', 'n/a')})"))
            if bcg.get("Requested") == "auto" and not meta.get("ArtifactCorrectionNote"):
                sec.warnings.append("BCG correction skipped: no channel is typed ECG")
        else:
            sec.facts.append(("BCG correction",
                              f"{bcg.get('method')}: {bcg.get('n_heartbeats', 'n/a')} heartbeats, "
                              f"{_fmt(bcg.get('heart_rate_bpm'))} bpm, "
                              f"mean template + {bcg.get('n_components', 'n/a')} principal "
                              f"component(s), pulse delay {_fmt(bcg.get('pulse_delay_s'))} s; "
                              f"R-peaks from channel {bcg.get('ecg_channel')}"))
    if meta.get("ArtifactCorrectionNote"):
        sec.warnings.append(str(meta["ArtifactCorrectionNote"]))
    filt = meta.get("Filter") or {}
    if filt:
        sec.facts.append(("EEG filter", f"{_fmt(filt.get('HighPass'))}–"
                                        f"{_fmt(filt.get('LowPass'))} Hz, notch "
                                        f"{filt.get('Notch') or 'none'}"))
    if meta.get("VolumeOnsetSource"):
        sec.facts.append(("volume onsets", f"{meta['VolumeOnsetSource']}"
                          + (f" ({meta['VolumeMarker']})" if meta.get("VolumeMarker") else "")))
        if meta["VolumeOnsetSource"] != "markers":
            sec.warnings.append(f"volume onsets not from scanner markers "
                                f"({meta['VolumeOnsetSource']})")
    cov = meta.get("EEGCoverage") or {}
    if cov.get("CoveredRange"):
        lo, hi = cov["CoveredRange"]
        sec.facts.append(("EEG coverage", f"{cov['CoveredVolumes']} of {cov['BOLDVolumes']} "
                                          f"volumes ({lo}-{hi})"))
    for rep in meta.get("VolumeMarkerRepairs") or []:
        text = rep if isinstance(rep, str) else json.dumps(rep)
        sec.warnings.append(f"volume marker repair: {text}")
    bads = meta.get("BadChannels") or {}
    listed = sorted({c for k in ("flat", "noisy", "marked_bad", "interpolated")
                     for c in bads.get(k, []) or []})
    sec.facts.append(("bad EEG channels", ", ".join(listed) if listed else "none"))
    fixed = set(bads.get("interpolated") or [])
    for kind in ("flat", "noisy"):
        if bads.get(kind):
            how = " (interpolated)" if set(bads[kind]) <= fixed else " (marked bad)"
            sec.warnings.append(f"{kind} EEG channels: {', '.join(bads[kind])}{how}")


def _synth_bold_figures(sec: RunSection, files: Mapping[str, Path], fig_dir: Path, key: str,
                        tr: float | None) -> None:
    """Synthesized vs measured slices and region time courses (the measured on the same grid)."""
    import nibabel as nib

    from . import figures as F

    synth_path = files["synth_bold"]
    meta = _json(synth_path)
    model = meta.get("Model")
    sec.facts.append(("EEG→fMRI model", str(model.get("Name") if isinstance(model, dict)
                                            else model or "unknown")))
    synth = nib.load(os.fspath(synth_path))
    tr = float(meta.get("RepetitionTime") or tr or 0) or None
    measured, why = None, "this participant has no measured BOLD (EEG only)"
    for role in ("model_bold", "preproc_bold"):
        if role in files:
            img = nib.load(os.fspath(files[role]))
            if img.shape[:3] == synth.shape[:3] and np.allclose(img.affine, synth.affine,
                                                                  atol=1e-3):
                measured, why = img, None
                break
            why = (f"the measured series ({_ROLE_NAMES[role]}) is on another grid than the "
                   "synthesized one")
    s_data = np.asarray(synth.dataobj, dtype=np.float32)
    m_data = None
    if measured is not None:
        m_all = np.asarray(measured.dataobj, dtype=np.float32)
        idx = meta.get("VolumeIndices")
        if idx is not None and len(idx) == s_data.shape[-1] and max(idx) < m_all.shape[-1]:
            m_data = m_all[..., np.asarray(idx, dtype=int)]
        elif m_all.shape[-1] == s_data.shape[-1]:
            m_data = m_all
        else:
            why = (f"the measured series has {m_all.shape[-1]} volumes, the synthesized "
                   f"{s_data.shape[-1]}, and its sidecar gives no VolumeIndices to align them")
    if why:
        sec.warnings.append(f"synthesized BOLD shown without comparison: {why}")
    _make_figure(
        sec, "Synthesized vs measured BOLD: slices",
        "One volume of the synthesized series (and of the measured one when available), each "
        "voxel z-scored over time; the last row maps the voxel-wise temporal correlation."
        + (f" Not compared: {why}." if why else ""),
        p := _figure_path(fig_dir, key, "synthslices", "bold"),
        lambda: F.plot_synth_slices(s_data, m_data, p))

    def regions() -> None:
        from ..resources.atlases import load_atlas
        atlas = load_atlas(str(meta.get("Atlas", "harvard-oxford")),
                           target=nib.Nifti1Image(s_data[..., 0], synth.affine))
        F.plot_region_timecourses(s_data, m_data, np.asarray(atlas.image.dataobj).astype(int),
                                  p2, labels=atlas.labels, tr=tr)

    _make_figure(
        sec, "Synthesized vs measured BOLD: region time courses",
        "Mean time course of the atlas regions that vary most (z-scored), synthesized (red) and "
        "measured (black), with their Pearson r.",
        p2 := _figure_path(fig_dir, key, "synthregions", "bold"), regions)


def _participant_summary(sections: Sequence[RunSection]) -> list[tuple[str, str]]:
    facts = [("runs", str(len(sections)))]
    for label in ("dummy scans", "mean FD", "gradient correction", "BCG correction",
                  "bad EEG channels"):
        vals = [(s.name, v) for s in sections for k, v in s.facts if k == label]
        if vals:
            facts.append((label, "; ".join(f"{v}" if len(vals) == 1 else f"{n}: {v}"
                                          for n, v in vals)))
    facts.append(("warnings", str(sum(len(s.warnings) for s in sections))))
    facts.append(("errors", str(sum(len(s.errors) for s in sections))))
    return facts


def _crash_messages(out: Path, label: str) -> list[str]:
    """One line per nipype crash file in ``OUT/logs/crash`` that belongs to this participant."""
    crash_dir = out / "logs" / "crash"
    if not crash_dir.is_dir():
        return []
    try:
        from ..cli.execute import read_crash_files
    except ImportError:  # the CLI is optional for report regeneration
        return []
    tag = f"sub_{label}_"
    return [f.oneline() for f in read_crash_files(crash_dir) if tag in f.node or
            f"sub-{label}" in f.crash_file.read_text(errors="replace")]


# ----------------------------------------------------------------------------- group
CV_REQUIRED = ("model", "direction", "fold", "mse", "r")
CV_OPTIONAL = ("test_subject", "baseline_mean_mse", "baseline_subject_mse", "noise_ceiling")
#: Columns of the summary table, in this order, where a direction has them; per-region and
#: per-cell scores stay in the per-fold table and the metrics TSVs.
CV_HEADLINE = ("mse", "r", "baseline_mean_mse", "baseline_subject_mse", "r_driven",
               "noise_ceiling", "rmse", "r_spatial", "psnr", "ssim", "fc_similarity", "r_bins")


def _direction_columns(table: pd.DataFrame, direction: str, candidates: Sequence[str],
                       suffix: str = "") -> list[str]:
    """The candidates with at least one finite value in the rows of ``direction``."""
    rows = table[table["direction"] == direction]
    out = []
    for c in candidates:
        col = rows.get(c + suffix)
        if col is None:
            continue
        values = pd.to_numeric(col, errors="coerce") if c not in ("model", "fold", "test_subject",
                                                                   "direction") else col
        if values.notna().any():
            out.append(c)
    return out


def summarise_cv(cv_table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SEM over folds of every numeric column, per direction and model.

    Parameters
    ----------
    cv_table
        One row per model × direction × fold (see :func:`write_group_report`).

    Returns
    -------
    pandas.DataFrame
        One row per (direction, model): ``n_folds`` and ``<metric>_mean``, ``<metric>_sem`` for
        every numeric column other than ``fold``; ``beats_baselines`` is true when the model's
        mean MSE is below both baselines' mean MSE (the columns that exist).
    """
    missing = [c for c in CV_REQUIRED if c not in cv_table.columns]
    if missing:
        raise ValueError(f"cv_table lacks columns {missing}; needs {list(CV_REQUIRED)}")
    metrics = [c for c in cv_table.columns
               if c not in ("model", "direction", "fold", "test_subject")
               and pd.api.types.is_numeric_dtype(cv_table[c])]
    rows = []
    for (direction, model), g in cv_table.groupby(["direction", "model"], sort=False):
        row: dict[str, Any] = {"direction": direction, "model": model, "n_folds": len(g)}
        for c in metrics:
            v = g[c].to_numpy(float)
            v = v[np.isfinite(v)]
            row[f"{c}_mean"] = float(v.mean()) if v.size else float("nan")
            sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
            # Identical fold values leave rounding noise (1e-17), not a spread worth printing.
            if math.isfinite(sem) and sem <= 1e-12 * max(1.0, abs(row[f"{c}_mean"])):
                sem = 0.0
            row[f"{c}_sem"] = sem
        base = [row[f"{b}_mean"] for b in ("baseline_mean_mse", "baseline_subject_mse")
                if f"{b}_mean" in row and math.isfinite(row[f"{b}_mean"])]
        row["beats_baselines"] = bool(base) and all(row["mse_mean"] < b for b in base)
        rows.append(row)
    return pd.DataFrame(rows)


def write_group_report(out_dir: str | os.PathLike, cv_table: pd.DataFrame,
                       learning_curves: Mapping[str, pd.DataFrame] | None = None,
                       single_region: pd.DataFrame | None = None,
                       fc: Mapping[str, Any] | None = None, *,
                       notes: Sequence[str] = (), warnings: Sequence[str] = ()) -> Path:
    """Write ``OUT/group.html`` with its figures in ``OUT/group/figures/``.

    Parameters
    ----------
    out_dir
        The derivatives dataset.
    cv_table
        One row per model × direction × fold. Required columns: ``model`` (str), ``direction``
        (``eeg2fmri`` or ``fmri2eeg``), ``fold`` (int or str), ``mse`` (float), ``r`` (float;
        the direction's headline Pearson r). Optional: ``test_subject`` (str; several joined by
        commas), ``baseline_mean_mse`` (training-mean prediction), ``baseline_subject_mse``
        (subject-mean oracle), ``noise_ceiling`` (r, simulated data). Any further numeric
        column (``ssim``, ``psnr``, ``fc_similarity``, ``r_alpha_occipital`` …) is summarised
        and tabulated too.
    learning_curves
        Label (e.g. ``"cnn (eeg2fmri)"``) → DataFrame with ``epoch``, ``train_loss``, optional
        ``val_loss`` and optional ``fold`` (the trainer's ``losses.tsv`` rows, concatenated with a
        ``fold`` column). ``None`` or empty: a note says none were recorded.
    single_region
        The single-region analysis table (``analysis.single_region``'s ``table``): ``region``,
        ``cell``, ``mean_improvement``, ``sem_improvement``, optional ``statistic``, ``p``,
        ``q``, ``significant``, ``rank``.
    fc
        Functional connectivity: ``{"measured": (R, R) array, "predicted": {model: (R, R)
        array}, "labels": [R names] (optional)}``.
    notes
        Free lines shown under the title (e.g. data used, CV regime).
    warnings
        Lines for the report's warnings section.

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    from . import figures as F

    out = Path(out_dir)
    fig_dir = out / "group" / "figures"
    errors: list[str] = []
    items: dict[str, FigureItem] = {}

    def figure(key: str, title: str, caption: str, draw: Callable[[Path], Any],
               missing: str | None) -> None:
        path = fig_dir / f"desc-{key}_group.svg"
        if missing:
            items[key] = FigureItem(title, caption, note=f"Not available because {missing}.")
            return
        try:
            draw(path)
        except Exception as exc:  # keep the rest of the report
            LOGGER.warning("group report figure %r failed: %s", title, exc, exc_info=True)
            errors.append(f"{title}: {type(exc).__name__}: {exc}")
            items[key] = FigureItem(title, caption, note=f"Not available because drawing it "
                                                         f"failed ({type(exc).__name__}: {exc}).")
            return
        items[key] = FigureItem(title, caption, src=f"group/figures/{path.name}")

    summary = summarise_cv(cv_table)
    figure("scores", "Cross-validated scores",
           "Top: Pearson r per model (mean ± SEM over folds) over all targets and, on "
           "simulated data, over the targets the simulated sources drive, with their noise "
           "ceiling in red. Bottom: MSE of the model and of the two baselines (training mean; "
           "each test subject's own mean — an oracle a model must beat by predicting "
           "fluctuations).",
           lambda p: F.plot_cv_scores(summary, p),
           "the CV table is empty" if summary.empty else None)
    figure("learningcurves", "Learning curves",
           "Training and validation loss per epoch; one line per fold. Validation loss rising "
           "while training loss falls is overfitting (early stopping keeps the best epoch).",
           lambda p: F.plot_learning_curves(learning_curves or {}, p),
           None if learning_curves else "no model recorded per-epoch losses (closed-form models "
                                       "such as ridge have none)")
    figure("regionband", "Single-region analysis: region × band",
           "Improvement in held-out r from adding one region to the non-grey-matter signal, per "
           "band cell; * marks q < 0.05 (Benjamini–Hochberg) with a positive improvement.",
           lambda p: F.plot_region_band(single_region, p),
           None if single_region is not None and len(single_region) else
           "the single-region analysis was not run")
    fc_missing = None
    if not fc or "measured" not in fc or not fc.get("predicted"):
        fc_missing = "no functional-connectivity matrices were given (needs region targets)"
    figure("fc", "Functional connectivity: predicted vs measured",
           "Correlation matrices of the region time series, measured and as predicted by each "
           "model, on one colour scale; similarity r is the correlation of their upper "
           "triangles.",
           lambda p: F.plot_fc_matrices(fc["measured"], fc["predicted"], p,
                                        labels=fc.get("labels")),
           fc_missing)

    directions = list(dict.fromkeys(summary["direction"])) if not summary.empty else []
    metric_cols = {d: _direction_columns(summary, d, CV_HEADLINE, "_mean") for d in directions}
    fold_cols = {d: _direction_columns(
        cv_table, d, [c for c in ("model", "fold", "test_subject") if c in cv_table]
        + [c for c in cv_table.columns if c not in ("direction", "model", "fold", "test_subject")])
        for d in directions}
    sr_table = None
    if single_region is not None and len(single_region):
        sr_table = single_region.sort_values(
            [c for c in ("cell", "rank") if c in single_region]).to_dict("records")
    html = _environment().get_template("group.html").render(
        summary=summary.to_dict("records"), metric_cols=metric_cols,
        folds=cv_table.to_dict("records"), fold_cols=fold_cols, directions=directions,
        figures=items, single_region=sr_table,
        sr_cols=list(single_region.columns) if sr_table else [],
        notes=list(notes), warnings=list(warnings), errors=errors,
        version=__version__, date=_now())
    return atomic_write_text(out / "group.html", html)
