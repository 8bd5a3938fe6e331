"""``--eeg-derivatives`` finds corrected EEG in the layouts public datasets publish.

The trees reproduce the real names of ds002338 (``derivatives/sub-xp201/eeg_pp/
d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr``, exports missing for some runs, no
dataset_description.json) and ds002158 (``derivatives/eegprep/sub-*/ses-001/eeg/
…_task-main_eeg_preproc.set``: one export per session, no ``run-``, macOS ``._*`` junk).
"""

from __future__ import annotations

import logging
from pathlib import Path

import mne
import numpy as np
import pytest

from bids_eeg2fmri.bids.eegderivatives import (check_eeg_derivatives, is_bids_eeg_name,
                                               match_corrected_eeg, name_entities)
from bids_eeg2fmri.cli.checks import check_path_options
from bids_eeg2fmri.config import Config, EEGConfig
from bids_eeg2fmri.eeg import io as eeg_io
from bids_eeg2fmri.eeg.pipeline import clean_eeg
from bids_eeg2fmri.errors import DataError, ExitCode, UserError

from bidsdata import make_dataset


def _touch(root: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        out.append(p)
    return out


@pytest.fixture
def xp2(tmp_path) -> tuple[Path, list[Path]]:
    """ds002338's raw EEG and ``derivatives/sub-*/eeg_pp`` names (run-03 has no export)."""
    root = tmp_path / "ds002338"
    raw = _touch(root, *[f"sub-xp201/eeg/sub-xp201_task-{t}_eeg.vhdr" for t in
                         ("1dNF_run-01", "1dNF_run-02", "1dNF_run-03", "MIpre")])
    stems = ["1dNF_run-01", "1dNF_run-02", "MIpre"]
    _touch(root / "derivatives", *[f"sub-xp201/eeg_pp/d_sub-xp201_task-{s}_eeg_pp.{ext}"
                                   for s in stems for ext in ("vhdr", "vmrk", "dat")],
           "sub-xp201/NF_eeg/d_sub-xp201_task-1dNF_run-01_NFeeg_scores.mat",
           "sub-xp201/head_motion/d_sub-xp201_task-1dNF_run-01_headmotion.tsv")
    return root / "derivatives", raw


def test_non_bids_exports_are_matched_by_entities(xp2, caplog):
    deriv, raw = xp2
    assert not (deriv / "dataset_description.json").exists()
    got = match_corrected_eeg(raw[0], deriv, raw)
    assert got.path == deriv / "sub-xp201/eeg_pp/d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr"
    assert match_corrected_eeg(raw[1], deriv, raw).path.name == \
        "d_sub-xp201_task-1dNF_run-02_eeg_pp.vhdr"
    assert match_corrected_eeg(raw[3], deriv, raw).path.name == "d_sub-xp201_task-MIpre_eeg_pp.vhdr"
    # run-03 has no export: no match, the run falls back to its raw EEG with a warning
    none = match_corrected_eeg(raw[2], deriv, raw)
    assert none.path is None and none.reason == "no corrected export"
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.eeg"):
        found = check_eeg_derivatives(deriv, raw)
    assert found[raw[2]] is None and sum(v is not None for v in found.values()) == 3
    assert "sub-xp201_task-1dNF_run-03_eeg.vhdr: no corrected export" in caplog.text
    assert "using the raw EEG" in caplog.text
    assert eeg_io.find_derivative_eeg(raw[2], deriv) is None
    # the same folder given as derivatives/<pipeline>/ or its parent finds the same files
    assert match_corrected_eeg(raw[0], deriv.parent, raw).path == got.path


def test_eegprep_session_exports_and_junk(tmp_path):
    root = tmp_path / "ds002158"
    deriv = root / "derivatives" / "eegprep"
    folder = "sub-02/ses-001/eeg/"
    _touch(deriv, folder + "sub-02_ses-001_task-main_eeg_preproc.set",
           folder + "sub-02_ses-001_task-main_eeg_preproc.fdt",
           folder + "._sub-02_ses-001_task-main_eeg_preproc.set")
    one = _touch(root, "sub-02/ses-001/eeg/sub-02_ses-001_task-main_eeg.vhdr")
    # one raw run: the export without run- is that run's
    assert match_corrected_eeg(one[0], deriv, one).path.name == \
        "sub-02_ses-001_task-main_eeg_preproc.set"
    # six raw runs (as published): a concatenation cannot be split, so no run uses it
    runs = _touch(root, *[f"sub-02/ses-001/eeg/sub-02_ses-001_task-main_run-00{i}_eeg.vhdr"
                          for i in range(1, 7)])
    got = match_corrected_eeg(runs[0], deriv, runs)
    assert got.path is None and "matches 6 raw runs" in got.reason and "run-" in got.reason
    # ... and when no selected run can use the folder, that is an error at start-up (exit 66)
    with pytest.raises(UserError, match="matches any selected run") as exc:
        check_eeg_derivatives(deriv, runs)
    assert exc.value.code == ExitCode.NO_INPUT and str(deriv) in str(exc.value)
    # a session mismatch never matches
    other = _touch(root, "sub-02/ses-002/eeg/sub-02_ses-002_task-main_eeg.vhdr")
    assert match_corrected_eeg(other[0], deriv, other).path is None


def test_bids_derivative_dataset_several_matches_and_empty_folders(tmp_path):
    deriv = tmp_path / "derivatives" / "bva"
    _touch(deriv, "sub-01/eeg/sub-01_task-rest_run-1_desc-bcg_eeg.vhdr",
           "sub-01/eeg/sub-01_task-rest_run-1_desc-gradient_eeg.vhdr",
           "sub-01/eeg/sub-01_task-rest_run-2_desc-bcg_eeg.vhdr")
    raw = _touch(tmp_path, "ds/sub-01/eeg/sub-01_task-rest_run-01_eeg.vhdr",
                 "ds/sub-01/eeg/sub-01_task-rest_run-02_eeg.vhdr")
    # run-02 and run-2 are the same run
    assert match_corrected_eeg(raw[1], deriv, raw).path.name == \
        "sub-01_task-rest_run-2_desc-bcg_eeg.vhdr"
    with pytest.raises(DataError, match="several corrected EEG files match") as exc:
        match_corrected_eeg(raw[0], deriv, raw)
    line = str(exc.value)
    assert "desc-bcg" in line and "desc-gradient" in line and "\n" not in line
    assert exc.value.code == ExitCode.DATA
    # an export with a run- the raw lacks is another acquisition
    norun = _touch(tmp_path, "ds/sub-01/eeg/sub-01_task-rest_eeg.vhdr")
    assert match_corrected_eeg(norun[0], deriv, norun).path is None
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no EEG recording") as exc:
        check_eeg_derivatives(empty, raw)
    assert exc.value.code == ExitCode.NO_INPUT


def test_entities_come_from_names_then_folders_below_the_root(tmp_path):
    assert name_entities("d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr") == \
        {"sub": "xp201", "task": "1dNF", "run": "01"}
    root = tmp_path / "run-9_sub-zz"  # entities above the root are ignored
    f = root / "sub-07" / "ses-2" / "clean_task-rest.set"
    assert name_entities(f, root) == {"task": "rest", "sub": "07", "ses": "2"}
    assert is_bids_eeg_name("sub-01_task-rest_desc-bcg_eeg.vhdr")
    assert not is_bids_eeg_name("d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr")


def test_path_options_resolve_against_the_current_directory(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    (ds / "derivatives" / "eegprep").mkdir(parents=True)
    (tmp_path / "elsewhere" / "derivatives" / "eegprep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = Config.from_sources({"bids_dir": str(ds), "eeg_derivatives": "derivatives/eegprep"})
    check_path_options(config)
    assert config.eeg.eeg_derivatives == tmp_path / "elsewhere" / "derivatives" / "eegprep"
    monkeypatch.chdir(tmp_path)
    config = Config.from_sources({"eeg_derivatives": "derivatives/eegprep"})
    with pytest.raises(UserError, match="--eeg-derivatives folder does not exist") as exc:
        check_path_options(config)
    assert exc.value.code == ExitCode.NO_INPUT
    (tmp_path / "file.txt").write_text("x")
    config = Config.from_sources({"eeg_derivatives": "file.txt"})
    with pytest.raises(UserError, match="must be a folder") as exc:
        check_path_options(config)
    assert exc.value.code == ExitCode.USAGE


def test_cli_checks_eeg_derivatives_before_any_processing(tmp_path, capsys, monkeypatch):
    from bids_eeg2fmri.cli.run import main

    ds = make_dataset(tmp_path / "ds", ("01",))
    monkeypatch.chdir(tmp_path)
    code = main([str(ds), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--eeg-derivatives", "nowhere", "-w", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code == 66 and "nowhere" in err and "Traceback" not in err
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
    # a folder holding exports of none of the runs: refused after the plan, before the workflow
    (tmp_path / "bva" / "sub-09").mkdir(parents=True)
    (tmp_path / "bva" / "sub-09" / "sub-09_task-rest_eeg.vhdr").write_text("")
    code = main([str(ds), str(tmp_path / "out2"), "participant", "--skip-bids-validation",
                 "--eeg-derivatives", "bva", "-w", str(tmp_path / "work2")])
    err = capsys.readouterr().err
    assert code == 66 and "matches any selected run" in err
    assert not list((tmp_path / "out2").glob("sub-01/eeg/*"))


def _analyzer_export(path: Path, *, sfreq: float = 200.0, n_vol: int = 40, tr: float = 1.0,
                     first: float = 0.4) -> None:
    """A BrainVision Analyzer-style export (float32, ECG channel, R128 + R pulse markers)."""
    import pybv

    rng = np.random.default_rng(3)
    names = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2", "ECG"]
    n = int((first + n_vol * tr + 0.5) * sfreq)
    data = rng.normal(scale=10.0, size=(len(names), n))
    t = np.arange(n) / sfreq
    data[2] += 20 * np.sin(2 * np.pi * 10 * t)
    onsets = np.round((first + np.arange(n_vol) * tr) * sfreq).astype(int)
    pulses = np.round(np.arange(0.3, n / sfreq, 0.9) * sfreq).astype(int)
    events = [{"onset": int(o), "description": 128, "type": "Response"} for o in onsets]
    events += [{"onset": int(o), "description": "R", "type": "Comment"} for o in pulses]
    path.parent.mkdir(parents=True, exist_ok=True)
    pybv.write_brainvision(data=data, sfreq=sfreq, ch_names=names, fname_base=path.stem,
                           folder_out=path.parent, events=events, unit="µV", fmt="binary_float32",
                           overwrite=True)


def test_a_non_bids_analyzer_export_is_read_and_used_uncorrected(tmp_path):
    export = tmp_path / "derivatives" / "sub-xp201" / "eeg_pp" / \
        "d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr"
    _analyzer_export(export)
    raw = eeg_io.read_eeg(export)
    assert raw.get_channel_types(picks=["ECG"]) == ["ecg"]
    assert sum(d.endswith("R128") for d in raw.annotations.description) == 40
    res = clean_eeg(export, EEGConfig(eeg_sfreq=100.0), tr=1.0, n_volumes=40, is_derivative=True)
    assert res.provenance["VolumeMarker"].endswith("R128")
    assert res.provenance["GradientCorrection"]["method"] == "none"
    assert res.provenance["BCGCorrection"]["method"] == "none"
    assert "ECG" not in mne.pick_info(res.raw.info, mne.pick_types(res.raw.info, eeg=True)).ch_names


def test_xp2_layout_segmented_exports_and_a_run_without_export(tmp_path, caplog):
    """ds002338's shape end to end (EEG workflow): run-01 has an Analyzer export segmented from a
    block marker (covers volumes 5-19 of 20), run-02 has none and falls back to its raw EEG."""
    import h5py
    import json

    from bidsdata import synthetic_raw, write_eeg
    from bids_eeg2fmri.workflows.eeg import init_eeg_preproc_wf

    ds = tmp_path / "ds002338"
    n_vol, tr = 20, 1.0
    raws = [write_eeg(ds, "xp201", task="1dNF", run=r,
                      raw=synthetic_raw(8, 250.0, duration=n_vol * tr + 4, tr=tr, n_volumes=n_vol,
                                        seed=r)).with_suffix(".vhdr") for r in (1, 2)]
    deriv = ds / "derivatives"
    export = deriv / "sub-xp201" / "eeg_pp" / "d_sub-xp201_task-1dNF_run-01_eeg_pp.vhdr"
    # markers at 2 s + k: the export starts 0.4 s before volume 5 and runs to the end
    _analyzer_export(export, sfreq=200.0, n_vol=n_vol - 5, tr=tr, first=0.4)
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.eeg"):
        found = check_eeg_derivatives(deriv, raws)
    assert found[raws[0]] == export and found[raws[1]] is None
    out = tmp_path / "out"
    config = Config.from_sources({"output_dir": str(out), "bids_dir": str(ds),
                                  "eeg_derivatives": str(deriv), "eeg_sfreq": 100.0})
    for run, raw in zip((1, 2), raws):
        wf = init_eeg_preproc_wf(config=config, name=f"eeg_{run}",
                                 metadata={"RepetitionTime": tr, "NumberOfVolumes": n_vol})
        wf.base_dir = str(tmp_path / "work")
        wf.inputs.inputnode.eeg_file = str(raw)
        wf.run()
    eeg_dir = out / "sub-xp201" / "eeg"
    stem = "sub-xp201_task-1dNF_run-{}_desc-{}"
    meta1 = json.loads((eeg_dir / (stem.format(1, "preproc") + "_eeg.json")).read_text())
    assert meta1["EEGIsDerivative"] is True and meta1["Sources"] == [
        "bids:eeg:" + export.relative_to(deriv).as_posix()]
    assert meta1["EEGCoverage"]["CoveredRange"] == [5, 19]
    with h5py.File(eeg_dir / (stem.format(1, "stft") + "_spectrogram.h5")) as f:
        np.testing.assert_array_equal(f["volume_indices"][()], np.arange(5, n_vol))
        chans = [c.decode() if isinstance(c, bytes) else c for c in f["channels"][()]]
    assert "ECG" not in chans and len(chans) == 6
    meta2 = json.loads((eeg_dir / (stem.format(2, "preproc") + "_eeg.json")).read_text())
    assert meta2["EEGIsDerivative"] is False
    assert "no corrected export" in meta2["ArtifactCorrectionNote"]
    assert meta2["EEGCoverage"]["CoveredVolumes"] == n_vol
