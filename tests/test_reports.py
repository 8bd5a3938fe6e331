"""HTML reports: figures, participant and group pages, CITATION.md, and a headless-Chromium check.

The derivative files are written here with the project's own writers (spectral features from an
MNE Raw, confounds from motion parameters, NIfTI series on a 4 mm template grid): realistic
content in seconds, where a participant-level run takes minutes. One slow test builds the report
from a real simulated participant-level run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import mne
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.bids.derivatives import write_json, write_sidecar
from bids_eeg2fmri.config import EEGConfig
from bids_eeg2fmri.eeg.pipeline import (add_volume_annotations, spectral_features,
                                        write_bandpower_tsv, write_spectrogram_h5)
from bids_eeg2fmri.fmri.confounds import framewise_displacement
from bids_eeg2fmri.reports import figures as F
from bids_eeg2fmri.reports.html import (find_run_files, summarise_cv, write_group_report,
                                        write_participant_report)
from bids_eeg2fmri.reports.methods import stages_from_config, write_citation
from bids_eeg2fmri.resources.templates import load_mask, load_template, template_grid

TR = 2.0
N_VOL = 24          # kept volumes
N_DUMMY = 2
SFREQ_RAW = 500.0
SRC = "sub-01_task-rest_run-1"


# ----------------------------------------------------------------------------- fake derivatives
def _resample(img: nib.Nifti1Image, shape, affine, order: str = "continuous") -> np.ndarray:
    from nilearn.image import resample_img
    out = resample_img(img, target_affine=affine, target_shape=shape, interpolation=order,
                       force_resample=True, copy_header=True)
    return np.asarray(out.dataobj)


def _write_fmri(bids: Path, out: Path, sub: str, rng: np.random.Generator, *,
                with_images: bool = True) -> None:
    """Raw BOLD + boldref, zero displacement field, mask, preproc series, confounds."""
    src = f"sub-{sub}_task-rest_run-1"
    func = out / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    shape4, aff4 = template_grid(4)
    tpl4 = _resample(load_template(2), shape4, aff4)
    mask4 = _resample(load_mask("brain", 2), shape4, aff4, "nearest") > 0
    meta = {"RepetitionTime": TR, "SliceTimingCorrected": True, "StartTime": TR / 2,
            "SkullStripped": True, "Sources": [f"bids:raw:sub-{sub}/func/{src}_bold.nii.gz"],
            "NumberOfVolumesDiscardedByUser": N_DUMMY,
            "DummyScans": {"Count": N_DUMMY, "Source": "detected (global-signal outliers)"},
            "Registration": {"Method": "syn", "Path": "boldref->MNI (direct)"}}
    # Motion: slow drift plus one jerk, so FD has a visible spike.
    params = np.cumsum(rng.normal(0, 0.02, (N_VOL, 6)), axis=0)
    params[:, 3:] *= 0.01
    params[N_VOL // 2:, 0] += 0.8
    fd = framewise_displacement(params)
    dvars = np.concatenate([[np.nan], 10 + rng.gamma(2, 1, N_VOL - 1)])
    conf = pd.DataFrame(params, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y",
                                         "rot_z"])
    conf["framewise_displacement"] = fd
    conf["dvars"] = dvars
    conf["std_dvars"] = dvars / 10
    conf.to_csv(func / f"{src}_desc-confounds_timeseries.tsv", sep="\t", index=False,
                na_rep="n/a")
    write_json(func / f"{src}_desc-confounds_timeseries.json", {"framewise_displacement": {}})
    preproc = func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz"
    write_sidecar(preproc, meta)
    if not with_images:
        return
    # Measured series: template contrast × 1000, a smooth shared fluctuation plus noise, 0 outside.
    t = np.arange(N_VOL)
    signal = np.sin(2 * np.pi * t / 12.0)
    series = (tpl4[..., None] * 1000 + 20 * tpl4[..., None] * signal
              + rng.normal(0, 5, shape4 + (N_VOL,))).astype(np.float32)
    series *= mask4[..., None]
    nib.save(nib.Nifti1Image(series, aff4), preproc)
    nib.save(nib.Nifti1Image(mask4.astype(np.uint8), aff4),
             func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-brain_mask.nii.gz")
    # Boldref on a 6 mm EPI grid; identity registration = zero displacement field.
    aff6 = np.diag([6.0, 6.0, 6.0, 1.0])
    aff6[:3, 3] = aff4[:3, 3]
    shape6 = tuple(int(np.ceil(s * 4 / 6)) for s in shape4)
    boldref = _resample(load_template(2), shape6, aff6) * 800
    nib.save(nib.Nifti1Image(boldref.astype(np.float32), aff6),
             func / f"{src}_space-boldref_boldref.nii.gz")
    field = np.zeros(shape6 + (1, 3), np.float32)
    nib.save(nib.Nifti1Image(field, aff6),
             func / f"{src}_from-boldref_to-MNI152NLin2009aSym_mode-image_xfm.nii.gz")
    # Raw BOLD: small EPI grid, the dummy volumes brighter (T1 saturation).
    raw = (boldref[..., None] + rng.normal(0, 4, shape6 + (N_VOL + N_DUMMY,))).astype(np.float32)
    raw[..., :N_DUMMY] *= 1.3
    rawdir = bids / f"sub-{sub}" / "func"
    rawdir.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(raw, aff6), rawdir / f"{src}_bold.nii.gz")


def _write_eeg(bids: Path, out: Path, sub: str, rng: np.random.Generator) -> None:
    """Raw EEG with a gradient-like artefact, the cleaned FIF, spectrogram and band power."""
    src = f"sub-{sub}_task-rest_run-1"
    names = ["Fp1", "Cz", "O1", "O2", "P3", "P4"]
    n_raw = int((N_VOL + 1) * TR * SFREQ_RAW)
    t = np.arange(n_raw) / SFREQ_RAW
    alpha = 10e-6 * np.sin(2 * np.pi * 10 * t) * (1 + np.sin(2 * np.pi * t / 17))
    clean = rng.normal(0, 5e-6, (len(names), n_raw)) + alpha
    ecg = 200e-6 * (np.mod(t, 0.9) < 0.02)
    onsets = np.arange(N_VOL) * TR + 0.5
    # Gradient artefact: a slice-rate sawtooth during each volume, 100× the EEG.
    grad = 500e-6 * ((t * 15) % 1.0 - 0.5) * ((t - 0.5) % TR < TR)
    info = mne.create_info(names + ["ECG"], SFREQ_RAW, ["eeg"] * len(names) + ["ecg"])
    raw = mne.io.RawArray(np.vstack([clean + grad, ecg + grad]), info, verbose=False)
    rawdir = bids / f"sub-{sub}" / "eeg"
    rawdir.mkdir(parents=True, exist_ok=True)
    raw_file = rawdir / f"{src}_eeg.fif"
    raw.save(raw_file, overwrite=True, verbose=False)

    cleaned = mne.io.RawArray(np.vstack([clean, ecg]), info.copy(), verbose=False)
    cleaned.resample(250.0, verbose=False)
    cleaned.filter(1.0, 30.0, picks="all", verbose=False)
    add_volume_annotations(cleaned, onsets, TR)
    eeg = out / f"sub-{sub}" / "eeg"
    eeg.mkdir(parents=True, exist_ok=True)
    fif = eeg / f"{src}_desc-preproc_eeg.fif"
    cleaned.save(fif, overwrite=True, verbose=False)
    report = {"Sources": [str(raw_file)], "VolumeOnsetSource": "markers",
              "VolumeMarker": "Response/R128", "VolumeMarkerRepairs": [], "RepetitionTime": TR,
              "GradientCorrection": {"Requested": "auto", "method": "AAS", "detected": True,
                                     "template_ratio": 71.2, "window": [4, 4]},
              "Filter": {"HighPass": 1.0, "LowPass": 30.0, "Notch": [50.0]},
              "BCGCorrection": {"Requested": "auto", "method": "PCA-OBS", "ecg_channel": "ECG",
                                "n_heartbeats": 53, "heart_rate_bpm": 66.7, "n_components": 0,
                                "pulse_delay_s": 0.3},
              "BadChannels": {"flat": [], "noisy": ["P4"], "interpolated": ["P4"],
                              "marked_bad": []},
              "Reference": "average"}
    write_sidecar(fif, report)
    res = spectral_features(cleaned, onsets, TR, EEGConfig())
    h5 = eeg / f"{src}_desc-stft_spectrogram.h5"
    write_sidecar(h5, {**write_spectrogram_h5(h5, res, "log-power"), **report})
    tsv = eeg / f"{src}_desc-bandpower_timeseries.tsv"
    write_sidecar(tsv, write_bandpower_tsv(tsv, res))


def _write_synth(out: Path, sub: str, rng: np.random.Generator, measured: Path | None) -> None:
    """A synthesized BOLD on the 4 mm grid: the measured series' fluctuation plus noise."""
    func = out / f"sub-{sub}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    shape4, aff4 = template_grid(4)
    mask4 = _resample(load_mask("brain", 2), shape4, aff4, "nearest") > 0
    if measured is not None:
        m = np.asarray(nib.load(measured).dataobj, dtype=np.float32)
        synth = m - m.mean(axis=-1, keepdims=True) + rng.normal(0, 8, m.shape).astype(np.float32)
    else:
        synth = rng.normal(0, 1, shape4 + (N_VOL,)).astype(np.float32)
    synth *= mask4[..., None]
    path = func / f"sub-{sub}_task-rest_run-1_space-MNI152NLin2009aSym_res-4_desc-synth_bold.nii.gz"
    nib.save(nib.Nifti1Image(synth.astype(np.float32), aff4), path)
    write_sidecar(path, {"RepetitionTime": TR, "Model": {"Name": "ridge"}, "Atlas": "aal"})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    """``(bids, out)``: sub-01 complete with a synthesized BOLD; sub-02 EEG only with a
    synthesized BOLD; sub-03 fMRI with only the confounds and the sidecar."""
    root = tmp_path_factory.mktemp("reports")
    bids, out = root / "bids", root / "out"
    rng = np.random.default_rng(0)
    _write_fmri(bids, out, "01", rng)
    _write_eeg(bids, out, "01", rng)
    _write_synth(out, "01", rng, out / "sub-01" / "func" /
                 f"{SRC}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz")
    _write_eeg(bids, out, "02", rng)
    _write_synth(out, "02", rng, None)
    _write_fmri(bids, out, "03", rng, with_images=False)
    write_json(out / "dataset_description.json",
               {"Name": "test", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
                "SourceDatasets": [{"URL": bids.as_uri()}]})
    return bids, out


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def _img_srcs(html: Path) -> list[str]:
    p = _Images()
    p.feed(html.read_text())
    return p.srcs


def _check_svg(path: Path) -> None:
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text, path
    assert re.search(r'<svg[^>]*width="[\d.]+pt"', text), f"{path.name} has no width"


# ----------------------------------------------------------------------------- figures
def test_carpet_rows_are_detrended_zscores():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (50, 40)) + np.linspace(0, 30, 40) + 100
    x[3] = 7.0  # a constant voxel
    rows = F.carpet_rows(x)
    keep = np.ones(50, bool)
    keep[3] = False
    assert np.allclose(rows[keep].mean(axis=1), 0, atol=1e-9)
    assert np.allclose(rows[keep].std(axis=1), 1)
    assert np.all(rows[3] == 0)
    # The linear trend is gone: no correlation with time is left.
    t = np.arange(40) - 19.5
    assert np.allclose(rows[keep] @ t, 0, atol=1e-6)


def test_iter_volumes_matches_nibabel(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.normal(0, 1, (5, 6, 7, 4)).astype(np.float32)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(2.0, 3.0)
    nib.save(img, tmp_path / "x.nii.gz")
    vols = list(F.iter_volumes(tmp_path / "x.nii.gz"))
    ref = np.asarray(nib.load(tmp_path / "x.nii.gz").dataobj)
    assert len(vols) == 4
    np.testing.assert_allclose(np.stack(vols, -1), ref, rtol=1e-6)


def test_warp_identity_field_keeps_the_image(dataset):
    _, out = dataset
    func = out / "sub-01" / "func"
    boldref = nib.load(func / f"{SRC}_space-boldref_boldref.nii.gz")
    warped = F.warp_to_template(boldref, func / f"{SRC}_from-boldref_to-MNI152NLin2009aSym_"
                                "mode-image_xfm.nii.gz", boldref)
    inner = (slice(1, -1),) * 3
    np.testing.assert_allclose(np.asarray(warped.dataobj)[inner],
                               np.asarray(boldref.dataobj)[inner], rtol=1e-4, atol=1e-3)


def test_region_means_and_synth_figures(tmp_path):
    rng = np.random.default_rng(3)
    atlas = np.zeros((6, 6, 4), int)
    atlas[:3] = 1
    atlas[3:] = 2
    base = rng.normal(0, 1, (2, 30))
    measured = np.where(atlas[..., None] == 1, base[0], base[1]) + 100
    synth = measured - 100 + rng.normal(0, 0.1, measured.shape)
    table = F.region_means(measured, atlas, {1: "left", 2: "right", 3: "absent"})
    assert list(table.columns) == ["left", "right"]
    np.testing.assert_allclose(table["left"], base[0] + 100)
    p1 = F.plot_synth_slices(synth, measured, tmp_path / "slices.svg", n_slices=2)
    p2 = F.plot_region_timecourses(synth, measured, atlas, tmp_path / "regions.svg",
                                   labels={1: "left", 2: "right"}, tr=2.0)
    p3 = F.plot_synth_slices(synth, None, tmp_path / "slices_only.svg", n_slices=2)
    for p in (p1, p2, p3):
        _check_svg(p)
    assert "r = 1.00" in p2.read_text() or "r = 0.99" in p2.read_text()


def test_group_figures(tmp_path):
    single = pd.DataFrame({"region": ["A", "A", "B", "B"], "cell": ["alpha", "beta"] * 2,
                           "mean_improvement": [0.1, -0.02, 0.0, 0.05],
                           "significant": [True, False, False, False]})
    _check_svg(F.plot_region_band(single, tmp_path / "rb.svg"))
    m = np.corrcoef(np.random.default_rng(0).normal(size=(5, 40)))
    _check_svg(F.plot_fc_matrices(m, {"ridge": m * 0.5 + 0.5 * np.eye(5)}, tmp_path / "fc.svg",
                                  labels=list("abcde")))
    curves = {"cnn": pd.DataFrame({"epoch": [0, 1, 2] * 2, "train_loss": [1, .5, .3] * 2,
                                   "val_loss": [1, .6, .5] * 2, "fold": [0] * 3 + [1] * 3})}
    _check_svg(F.plot_learning_curves(curves, tmp_path / "lc.svg"))


# ----------------------------------------------------------------------------- participant
@pytest.fixture(scope="module")
def participant_reports(dataset) -> dict[str, Path]:
    _, out = dataset
    return {s: write_participant_report(out, s) for s in ("01", "sub-02", "03")}


def test_find_runs_groups_derivatives_by_source(dataset):
    _, out = dataset
    runs = find_run_files(out, "01")
    assert list(runs) == [SRC]
    assert {"boldref", "confounds", "preproc_bold", "brain_mask", "mni_xfm", "synth_bold",
            "preproc_eeg", "spectrogram", "bandpower"} <= set(runs[SRC])


def test_participant_report_complete(dataset, participant_reports):
    _, out = dataset
    html = participant_reports["01"]
    assert html == out / "sub-01.html"
    text = html.read_text()
    srcs = _img_srcs(html)
    expected = {f"sub-01/figures/{SRC}_desc-{d}.svg" for d in
                ("registration_bold", "motion_bold", "carpet_bold", "dummy_bold",
                 "eegclean_eeg", "spectrogram_eeg", "synthslices_bold", "synthregions_bold")}
    assert set(srcs) == expected
    for s in srcs:
        assert not Path(s).is_absolute()
        _check_svg(out / s)
    assert "Not available" not in text
    assert "No errors." in text
    # Summary facts from the sidecars and confounds.
    assert "detected (global-signal outliers)" in text
    assert "PCA-OBS: 53 heartbeats" in text
    assert "mean FD" in text
    assert "noisy EEG channels: P4 (interpolated)" in text
    # No temporaries left beside the figures.
    assert not list((out / "sub-01").rglob(".tmp-*"))


def test_participant_report_eeg_only_and_missing_inputs(dataset, participant_reports):
    _, out = dataset
    eeg_only = participant_reports["sub-02"].read_text()
    assert "sub-02/figures/sub-02_task-rest_run-1_desc-eegclean_eeg.svg" in eeg_only
    assert "this participant has no measured BOLD (EEG only)" in eeg_only
    assert "registration_bold" not in eeg_only  # no fMRI section at all
    partial = participant_reports["03"].read_text()
    # The motion figure is drawn from the confounds; the rest say why they are missing.
    assert _img_srcs(participant_reports["03"]) == \
        ["sub-03/figures/sub-03_task-rest_run-1_desc-motion_bold.svg"]
    assert partial.count("Not available because") == 3
    assert "the boldref-to-MNI transform" in partial or "boldref→MNI transform" in partial
    assert "the raw BOLD file was not found" in partial
    for name, html in participant_reports.items():
        for s in _img_srcs(html):
            assert (out / s).is_file(), (name, s)


def test_participant_report_without_any_derivatives(tmp_path):
    html = write_participant_report(tmp_path, "09")
    text = html.read_text()
    assert "No derivatives were found for sub-09" in text
    assert _img_srcs(html) == []


def test_participant_report_lists_its_crashes_only(tmp_path):
    crash = tmp_path / "logs" / "crash"
    crash.mkdir(parents=True)
    for sub in ("09", "10"):
        (crash / f"crash-20260101-000000-root-register-{sub}.txt").write_text(
            f"Node: bids_eeg2fmri_participant_wf.sub_{sub}_task_rest_run_1_fmri.register\n"
            "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
            f"bids_eeg2fmri.errors.DataError: registration diverged for sub-{sub}\n")
    text = write_participant_report(tmp_path, "09").read_text()
    assert "registration diverged for sub-09" in text
    assert "sub-10" not in text
    assert "No errors." not in text


# ----------------------------------------------------------------------------- group
def _cv_table() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for direction, models in (("eeg2fmri", ["ridge", "cnn"]),
                              ("fmri2eeg", ["ridge", "rnn-seq2seq"])):
        for model in models:
            for fold, subject in enumerate(["01", "02", "03"]):
                rows.append({"model": model, "direction": direction, "fold": fold,
                             "test_subject": subject, "mse": 0.8 + rng.normal(0, 0.05),
                             "r": 0.4 + rng.normal(0, 0.05), "baseline_mean_mse": 1.05,
                             "baseline_subject_mse": 1.0, "noise_ceiling": 0.7,
                             "ssim": 0.3 + rng.normal(0, 0.02)})
    return pd.DataFrame(rows)


def test_summarise_cv():
    s = summarise_cv(_cv_table())
    assert list(s["model"]) == ["ridge", "cnn", "ridge", "rnn-seq2seq"]
    assert (s["n_folds"] == 3).all()
    assert s["beats_baselines"].all()
    assert {"r_mean", "r_sem", "mse_mean", "ssim_mean", "noise_ceiling_mean"} <= set(s.columns)
    with pytest.raises(ValueError, match="lacks columns"):
        summarise_cv(pd.DataFrame({"model": ["x"]}))


@pytest.fixture(scope="module")
def group_report(dataset) -> Path:
    _, out = dataset
    single = pd.DataFrame({"region": ["Occipital_Pole", "Occipital_Pole", "Precuneus",
                                      "Precuneus"], "cell": ["alpha_all", "beta_all"] * 2,
                           "mean_improvement": [0.08, 0.01, -0.01, 0.02],
                           "sem_improvement": [0.02, 0.02, 0.02, 0.02],
                           "p": [0.001, 0.4, 0.6, 0.3], "q": [0.004, 0.5, 0.6, 0.5],
                           "significant": [True, False, False, False], "rank": [1, 2, 2, 1]})
    m = np.corrcoef(np.random.default_rng(0).normal(size=(6, 50)))
    curves = {"cnn (eeg2fmri)": pd.DataFrame({"epoch": np.arange(5), "train_loss": np.geomspace(
        1, 0.3, 5), "val_loss": [1.0, 0.7, 0.6, 0.62, 0.65]})}
    return write_group_report(out, _cv_table(), curves, single,
                              {"measured": m, "predicted": {"ridge": 0.6 * m + 0.4 * np.eye(6)},
                               "labels": [f"R{i}" for i in range(6)]},
                              notes=["3 simulated participants, LOSO"])


def test_group_report(dataset, group_report):
    _, out = dataset
    text = group_report.read_text()
    srcs = _img_srcs(group_report)
    assert set(srcs) == {f"group/figures/desc-{k}_group.svg"
                         for k in ("scores", "learningcurves", "regionband", "fc")}
    for s in srcs:
        _check_svg(out / s)
    assert "Not available" not in text and "No errors." in text
    assert text.count("<h3>eeg2fmri</h3>") == 1 and "rnn-seq2seq" in text
    assert "Occipital_Pole" in text


def test_group_report_optional_parts_missing(tmp_path):
    html = write_group_report(tmp_path, _cv_table(), {}, None, None)
    text = html.read_text()
    assert _img_srcs(html) == ["group/figures/desc-scores_group.svg"]
    assert "the single-region analysis was not run" in text
    assert "no model recorded per-epoch losses" in text
    assert "no functional-connectivity matrices were given" in text


# ----------------------------------------------------------------------------- CITATION.md
def test_citation_lists_only_the_stages_that_ran(tmp_path):
    from bids_eeg2fmri.config import Config

    cfg = Config().to_dict()
    path = write_citation(tmp_path, stages_from_config(cfg, ran=["eeg"]))
    text = path.read_text()
    assert path == tmp_path / "logs" / "CITATION.md"
    assert "## EEG" in text and "## Functional MRI" not in text and "## Models" not in text
    assert "MNE-Python " + mne.__version__ in text
    assert "Allen PJ" in text and "Power JD" not in text
    fmri = {**cfg["fmri"], "dummy_scans": 4, "registration": "affine", "fwhm": 6.0}
    text = write_citation(tmp_path, {"fmri": fmri, "eeg": {**cfg["eeg"], "bcg_correction": "off"},
                                     "models": {"models": ["ridge", "cnn"], "cv": "loso",
                                                "direction": "eeg2fmri"}}).read_text()
    assert "the first 4 volumes were flagged as non-steady-state" in text
    assert "kept in every derivative" in text and "discarded" not in text
    assert "SyN" not in text and "6 mm FWHM" in text
    assert "Niazy" not in text
    assert "cnn — Bricman & Borst 2021" in text
    with pytest.raises(ValueError, match="unknown stages"):
        write_citation(tmp_path, {"anat": True})


def test_citation_describes_the_model_inputs_used(tmp_path):
    from bids_eeg2fmri.reports.methods import update_citation

    models = {"models": ["ridge"], "direction": "both", "eeg_features": "bands",
              "fmri_input": "pca", "pca_components": 12}
    text = write_citation(tmp_path, {"models": models}).read_text()
    assert "mean log power of each EEG band per channel and TR" in text
    assert "leading 12 principal components" in text
    text = write_citation(tmp_path, {"models": {"models": ["ridge"]}}).read_text()
    assert "per-TR EEG spectrograms" in text and "principal components" not in text
    # update_citation keeps the stages of earlier runs and replaces a stage's options
    update_citation(tmp_path, {"eeg": True, "models": models})
    text = update_citation(tmp_path, {"models": {"models": ["mlp"]}}).read_text()
    assert "## EEG" in text and "## Models" in text and "mlp" in text
    assert "leading 12 principal components" not in text


# ----------------------------------------------------------------------------- Chromium
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal Chrome DevTools Protocol client over a standard-library WebSocket (RFC 6455).

    Enough for one page: send commands, collect events. No extra package is needed.
    """

    def __init__(self, ws_url: str, timeout: float = 60.0) -> None:
        u = urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")
        self.next_id = 0
        self.events: list[dict] = []

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _recv_message(self) -> dict:
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x9:           # ping
                self._send_frame(0xA, data)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the connection")
            parts.append(data)
            if b0 & 0x80:               # FIN
                return json.loads(b"".join(parts))

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self._send_frame(0x1, json.dumps({"id": my_id, "method": method,
                                          "params": params}).encode())
        while True:
            msg = self._recv_message()
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.events:
                if e["method"] == method:
                    return e
            msg = self._recv_message()
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A headless Chromium with remote debugging; skipped (failed under CI=true) when absent."""
    exe = _chromium()
    if exe is None:
        reason = ("Chromium is not installed (Debian: apt-get install chromium chromium-driver); "
                  "the report rendering test needs it")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " — and CI=true, where .ci/run must install it")
        pytest.skip(reason)
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    end = time.monotonic() + 60
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            pytest.fail(f"Chromium ({exe}) did not start its DevTools endpoint")
        time.sleep(0.1)
    port, browser_path = port_file.read_text().splitlines()[:2]
    browser = DevTools(f"ws://127.0.0.1:{port}{browser_path}")
    try:
        yield browser, int(port)
    finally:
        browser.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def render(chromium, html: Path, screenshot: Path) -> dict:
    """Open ``html`` in a new tab; return image states and console errors; save a screenshot."""
    browser, port = chromium
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    page = DevTools(f"ws://127.0.0.1:{port}/devtools/page/{target}")
    try:
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=html.as_uri())
        page.wait_event("Page.loadEventFired")
        images = []
        for _ in range(100):  # load fires after images, but decode can lag
            res = page.call("Runtime.evaluate", returnByValue=True, expression=(
                "Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                "complete: i.complete, width: i.naturalWidth}))"))
            images = res["result"]["value"]
            if all(i["complete"] for i in images):
                break
            time.sleep(0.1)
        height = page.call("Runtime.evaluate", returnByValue=True,
                           expression="document.documentElement.scrollHeight")["result"]["value"]
        page.call("Emulation.setDeviceMetricsOverride", width=1280, height=min(int(height), 16000),
                  deviceScaleFactor=1, mobile=False)
        shot = page.call("Page.captureScreenshot", format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors = []
        for e in page.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                       for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return {"images": images, "errors": errors, "height": height}
    finally:
        page.close()
        browser.call("Target.closeTarget", targetId=target)


def test_reports_render_in_chromium(dataset, participant_reports, group_report, chromium,
                                    tmp_path):
    pages = {**participant_reports, "group": group_report}
    for name, html in pages.items():
        shot = tmp_path / f"{html.stem}.png"
        res = render(chromium, html, shot)
        assert res["errors"] == [], (name, res["errors"])
        assert len(res["images"]) == len(_img_srcs(html)), name
        for img in res["images"]:
            assert img["complete"] and img["width"] > 0, (name, img)
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chromium_detects_a_broken_image(dataset, chromium, tmp_path):
    """The rendering check can fail: a missing figure gives naturalWidth 0 and a console error."""
    _, out = dataset
    page = out / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                    '<img src="sub-01/figures/missing.svg"></body></html>')
    try:
        res = render(chromium, page, tmp_path / "broken.png")
    finally:
        page.unlink()
    assert res["images"][0]["width"] == 0
    assert any("missing.svg" in e or "ERR_FILE_NOT_FOUND" in e for e in res["errors"])


# ----------------------------------------------------------------------------- slow: real run
@pytest.mark.slow
def test_participant_report_from_a_real_run(tmp_path):
    """Simulate → participant level → report: every figure drawn from real derivatives."""
    from bids_eeg2fmri.cli.run import main as run_main
    from bids_eeg2fmri.cli.simulate import main as sim_main

    bids, out = tmp_path / "bids", tmp_path / "out"
    assert sim_main([str(bids), "--subjects", "1", "--volumes", "30", "--gradient-artifact",
                     "--bcg", "--quiet"]) in (0, None)
    code = run_main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"),
                     "--skip-bids-validation", "--registration", "syn-quick"])
    assert code in (0, None)
    html = write_participant_report(out, "01")
    text = html.read_text()
    assert "Not available" not in text and "No errors." in text
    srcs = _img_srcs(html)
    assert len(srcs) == 6
    for s in srcs:
        _check_svg(out / s)


def test_participant_report_shows_partial_eeg_coverage(tmp_path):
    eeg = tmp_path / "sub-09" / "eeg"
    eeg.mkdir(parents=True)
    (eeg / "sub-09_task-rest_desc-preproc_eeg.fif").write_bytes(b"")
    (eeg / "sub-09_task-rest_desc-preproc_eeg.json").write_text(json.dumps({
        "VolumeOnsetSource": "markers", "VolumeMarker": "R128",
        "VolumeMarkerRepairs": ["the EEG holds the markers of volumes 13-109 of 110"],
        "EEGCoverage": {"BOLDVolumes": 110, "CoveredVolumes": 97, "CoveredRange": [13, 109],
                        "UncoveredVolumes": 13, "Fraction": 0.8818},
        "EEGPlacement": {"Method": "aligned to the raw recording's markers",
                         "ShiftSeconds": 26.0}}))
    text = re.sub(r"\s+", " ", write_participant_report(tmp_path, "09").read_text())
    assert "<th>EEG coverage</th><td>97 of 110 volumes (13-109)</td>" in text
    assert ("<th>EEG placed in the run by</th><td>aligned to the raw recording&#39;s markers "
            "(shift 26.000 s)</td>") in text
    assert "the EEG holds the markers of volumes 13-109 of 110" in text
