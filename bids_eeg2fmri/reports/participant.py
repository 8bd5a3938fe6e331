"""The participant report: one section per run from the derivative files alone (plus the raw
BOLD/EEG for the dummy-scan and before/after-correction figures), so it can be regenerated at
any time. A derivative that is missing, or a figure that cannot be drawn, becomes a "not
available because …" note in its place and an entry in the report's errors section; the report
itself is always written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..crashfiles import read_crash_files
from .._version import __version__
from ..bids.derivatives import atomic_write_text, build_path
from .discovery import (find_run_files, orphan_sidecar, raw_file, read_sidecar, source_dataset,
                        subject_label)
from .page import FD_THRESHOLD_MM, LOGGER, FigureItem, RunSection, environment, fmt, now

# Share of volumes above the FD threshold from which a run is flagged.
HIGH_MOTION_FRACTION = 0.2

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
    label = subject_label(subject)
    raw_root = Path(bids_dir) if bids_dir is not None else source_dataset(out)
    fig_dir = out / f"sub-{label}" / "figures"
    sections = [_run_section(out, key, files, fig_dir, raw_root, fd_threshold)
                for key, files in find_run_files(out, label).items()]
    crashes = _crash_messages(out, label)
    summary = _participant_summary(sections)
    html = environment().get_template("participant.html").render(
        subject=label, sections=sections, summary=summary, crashes=crashes,
        errors=[(s.name, e) for s in sections for e in s.errors],
        warnings=[(s.name, w) for s in sections for w in s.warnings],
        version=__version__, date=now(), bids_dir=str(raw_root) if raw_root else None)
    return atomic_write_text(out / f"sub-{label}.html", html)




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
    bold_meta = (read_sidecar(files.get("preproc_bold"))
                 or orphan_sidecar(out, key, "preproc", "bold"))
    eeg_meta = read_sidecar(files.get("preproc_eeg")) or orphan_sidecar(out, key, "preproc", "eeg")
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
        raw_bold = raw_file(raw_root, key, "func", "bold", bold_meta.get("Sources", []))
        _make_figure(
            sec, "Dummy scans",
            "Global signal of the raw run (mean of the voxels brighter than average). Leading "
            "volumes still approaching steady-state magnetisation are brighter; the shaded ones "
            "are kept in every output and flagged (non_steady_state_outlier columns of the "
            "confounds), so that analyses leave them out.",
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
        raw_eeg = raw_file(raw_root, key, "eeg", "eeg", eeg_meta.get("Sources", []))
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
        model = read_sidecar(files["synth_spectrogram"]).get("Model", {})
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
        sec.facts.append(("slice-timing correction", fmt(stc) if stc is not None else "n/a"))
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
        ratio = (f", artefact ratio {fmt(grad.get('template_ratio'))}"
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
                              f"{fmt(bcg.get('heart_rate_bpm'))} bpm, "
                              f"mean template + {bcg.get('n_components', 'n/a')} principal "
                              f"component(s), pulse delay {fmt(bcg.get('pulse_delay_s'))} s; "
                              f"R-peaks from channel {bcg.get('ecg_channel')}"))
    if meta.get("ArtifactCorrectionNote"):
        sec.warnings.append(str(meta["ArtifactCorrectionNote"]))
    filt = meta.get("Filter") or {}
    if filt:
        sec.facts.append(("EEG filter", f"{fmt(filt.get('HighPass'))}–"
                                        f"{fmt(filt.get('LowPass'))} Hz, notch "
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
    place = meta.get("EEGPlacement") or {}
    if place.get("Method") and place["Method"] != "markers of every volume":
        shift = place.get("ShiftSeconds")
        sec.facts.append(("EEG placed in the run by", place["Method"] + (
            f" (shift {shift:.3f} s)" if isinstance(shift, (int, float)) else "")))
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
    meta = read_sidecar(synth_path)
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
    tag = f"sub_{label}_"
    return [f.oneline() for f in read_crash_files(crash_dir) if tag in f.node or
            f"sub-{label}" in f.crash_file.read_text(errors="replace")]


