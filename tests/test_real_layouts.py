"""The participant and group levels on three public EEG-fMRI datasets' real layouts.

Each fixture rebuilds the published tree of two subjects (``tests/reallayouts``) and the app is run
as a user of that dataset would run it, with the flags ``docs/datasets.md`` gives.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mne
import nibabel as nib
import pandas as pd
import pytest
from conftest import tree_hash
from reallayouts import BUILDERS, ds002158, ds002338, ds003768
from reallayouts.common import LAYOUTS

pytestmark = pytest.mark.skipif(not LAYOUTS.is_dir(), reason=f"no real layouts at {LAYOUTS}")

APP = [sys.executable, "-m", "bids_eeg2fmri.cli.run"]
FAST = ["--registration", "affine", "--nprocs", "2", "--omp-nthreads", "1", "--model-ready",
        "--output-res", "4"]
GROUP = ["--epochs", "2", "--window-trs", "4", "--horizon-trs", "1", "--random-seed", "0",
         "--models", "ridge"]
# What a user of each dataset passes (docs/datasets.md), restricted to one run per subject to
# keep the default suite short; the slow tests run every run.
CASES = {
    "ds003768": {"flags": ["--skip-bids-validation", "--task-label", "rest"],
                 "filter": {"bold": {"run": 1}, "eeg": {"run": 1}},
                 "runs": {"01": "sub-01_task-rest_run-1", "02": "sub-02_task-rest_run-1"},
                 "volumes": ds003768.volumes("rest")},
    "ds002338": {"flags": ["--skip-bids-validation", "--task-label", "MIpre"],
                 "filter": None,
                 "runs": {"xp201": "sub-xp201_task-MIpre", "xp202": "sub-xp202_task-MIpre"},
                 "volumes": ds002338.SIZES["small"].volumes},
    "ds002158": {"flags": ["--skip-bids-validation", "--session-label", "001", "--task-label",
                           "main"],
                 "filter": {"bold": {"run": 1}, "eeg": {"run": 1}},
                 "runs": {"02": "sub-02_ses-001_task-main_run-001",
                          "04": "sub-04_ses-001_task-main_run-001"},
                 "volumes": ds002158.volumes("main")},
}


def run_app(bids: Path, out: Path, level: str, work: Path, *args: str,
            timeout: int = 1500, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The app in a new process, as a user runs it."""
    return subprocess.run([*APP, str(bids), str(out), level, "-w", str(work), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def filter_args(tmp: Path, filters: dict | None) -> list[str]:
    """``--bids-filter-file`` arguments for ``filters`` (none when ``None``)."""
    if filters is None:
        return []
    path = tmp / "filter.json"
    path.write_text(json.dumps(filters))
    return ["--bids-filter-file", str(path)]


@pytest.fixture(scope="module", params=sorted(CASES))
def participant(request, tmp_path_factory, real_layout):
    """Build one layout, run the participant level once; returns what the tests look at."""
    ds = request.param
    case = CASES[ds]
    tmp = tmp_path_factory.mktemp(ds)
    bids = real_layout(ds)
    before = tree_hash(bids)
    out, work = tmp / "out", tmp / "work"
    proc = run_app(bids, out, "participant", work, *FAST, *case["flags"],
                   *filter_args(tmp, case["filter"]))
    return {"ds": ds, "bids": bids, "out": out, "work": work, "proc": proc, "tmp": tmp,
            "before": before, "case": case}


def _sub_dir(out: Path, name: str) -> Path:
    sub = name.split("_")[0]
    ses = [p for p in name.split("_") if p.startswith("ses-")]
    return out / sub / (ses[0] if ses else "")


def test_participant_level_writes_every_selected_run(participant):
    proc, out, case = participant["proc"], participant["out"], participant["case"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in case["runs"].values():
        folder = _sub_dir(out, name)
        bold = folder / "func" / f"{name}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz"
        assert bold.is_file(), sorted(p.name for p in (folder / "func").glob("*"))
        assert nib.load(bold).shape[3] == case["volumes"]
        meta = json.loads((folder / "eeg" / f"{name}_desc-preproc_eeg.json").read_text())
        # Every volume found in the recording's own marker file, R128 from Recorder.
        assert meta["VolumeMarker"] == "Response/R128"
        assert len(meta["VolumeOnsetSamples"]) == case["volumes"]
        assert (folder / "eeg" / f"{name}_desc-stft_spectrogram.h5").is_file()
    assert participant["before"] == tree_hash(participant["bids"]), "input dataset was modified"


def test_quirks_of_each_dataset_are_handled_as_documented(participant):
    ds, proc, out, case = (participant[k] for k in ("ds", "proc", "out", "case"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    name = next(iter(case["runs"].values()))
    meta = json.loads((_sub_dir(out, name) / "eeg" / f"{name}_desc-preproc_eeg.json").read_text())
    raw = mne.io.read_raw(_sub_dir(out, name) / "eeg" / f"{name}_desc-preproc_eeg.vhdr",
                          verbose="error")
    # BrainVision holds no channel types: the derivative's channels.tsv does.
    ctype = pd.read_csv(_sub_dir(out, name) / "eeg" / f"{name}_desc-preproc_channels.tsv",
                        sep="\t", index_col="name")["type"].str.upper()
    assert list(ctype.index) == raw.ch_names
    if ds == "ds003768":
        # No channels.tsv: the ECG is found by its name; the SyncBox pulses, spaced by the TR
        # like the volume triggers, are not taken for them.
        assert meta["BCGCorrection"]["ecg_channel"] == "ECG"
        assert ctype["ECG"] == "ECG"
        assert "sub-01_T1w.nii.gz: not fetched" in log and log.count("sub-01_T1w.nii.gz") == 1
    elif ds == "ds002338":
        # Space-separated, quoted channels.tsv and ragged events.tsv inherited from the top.
        assert "task-MIpre_channels.tsv: columns are separated by spaces" in log
        assert "task-MIpre_events.tsv: some rows end with extra tabs" in log
        assert meta["BCGCorrection"]["ecg_channel"] == "ECG"
        assert ctype["ECG"] == "ECG"
        assert (ctype == "EEG").sum() == 63
    else:
        # No ECG lead in this cap (TP10 served for heartbeats): BCG skipped with a warning.
        assert meta["BCGCorrection"]["method"] == "none"
        assert "no ECG channel; BCG correction skipped" in log
        assert "ses-001" in name


def test_dry_run_lists_unfetched_runs_and_skips_them(participant, tmp_path):
    if participant["ds"] == "ds002158":
        # Sessions, six EEG runs and a BOLD-only rest run per subject.
        proc = run_app(participant["bids"], tmp_path / "out", "participant", tmp_path / "w",
                       "--dry-run", "--skip-bids-validation")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "sub-02: 6 paired, 0 EEG-only, 1 BOLD-only" in proc.stdout
        assert "sub-04: 6 paired, 0 EEG-only, 1 BOLD-only" in proc.stdout
        assert "sub-02_ses-001_task-rest_run-001" in proc.stdout
        return
    if participant["ds"] != "ds003768":
        pytest.skip("covered on the other layouts")
    bids = ds003768.build(tmp_path / "ds", unfetched=("sub-01_task-sleep_run-2",))
    # An odd BIDSVersion must not matter either.
    desc = json.loads((bids / "dataset_description.json").read_text())
    (bids / "dataset_description.json").write_text(json.dumps({**desc, "BIDSVersion": "1.4.1rc"}))
    proc = run_app(bids, tmp_path / "out", "participant", tmp_path / "w", "--dry-run",
                   "--skip-bids-validation", "--participant-label", "01")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sub-01: 4 paired" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "sub-01_task-sleep_run-2 " in ln)
    assert "skipped" in line and "not fetched" in line
    assert proc.stderr.count("run sub-01_task-sleep_run-2 skipped: ") == 1
    assert proc.stderr.count("sub-01_T1w.nii.gz: not fetched") == 1


def test_editing_a_sidecar_reruns_the_eeg_cleaning(participant):
    if participant["ds"] != "ds002338":
        pytest.skip("the malformed channels.tsv is ds002338's")
    assert participant["proc"].returncode == 0
    bids, out, work, case = (participant[k] for k in ("bids", "out", "work", "case"))
    args = [*FAST, *CASES["ds002338"]["flags"]]
    node = next(work.rglob("sub_xp201_task_MIpre_eeg/clean_eeg"))
    hashes = sorted(p.name for p in node.glob("_0x*.json"))
    same = run_app(bids, out, "participant", work, *args)
    assert same.returncode == 0, same.stderr[-2000:]
    assert sorted(p.name for p in node.glob("_0x*.json")) == hashes  # unchanged: cached
    tsv = bids / "task-MIpre_channels.tsv"
    original = tsv.read_bytes()
    try:
        # The user repairs the file: tab-separated, no quotes, ECG typed MISC.
        rows = [ln.split() for ln in original.decode().splitlines() if ln.strip()]
        fixed = ["\t".join(c.strip("'\u2019") for c in r) for r in rows]
        fixed = [ln.replace("ECG\tECG", "ECG\tMISC") for ln in fixed]
        tsv.write_text("\n".join(fixed) + "\n")
        again = run_app(bids, out, "participant", work, *args)
    finally:
        tsv.write_bytes(original)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.name for p in node.glob("_0x*.json")) != hashes  # re-ran
    assert "task-MIpre_channels.tsv: columns are separated" not in again.stderr
    name = case["runs"]["xp201"]
    meta = json.loads((out / "sub-xp201" / "eeg" / f"{name}_desc-preproc_eeg.json").read_text())
    assert meta["BCGCorrection"]["method"] == "none"  # ECG now MISC: no BCG correction


def test_group_level_trains_on_the_layout(participant):
    assert participant["proc"].returncode == 0
    out, work, tmp = participant["out"], participant["work"], participant["tmp"]
    copy = tmp / "group-out"
    shutil.copytree(out, copy)
    proc = run_app(participant["bids"], copy, "group", work, *GROUP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (copy / "group.html").is_file()
    assert list((copy / "group").rglob("*ridge*")), sorted(p.name for p in (copy / "group").rglob("*"))


def test_ds002338_analyzer_exports_through_participant_and_group(tmp_path):
    """XP2's published BrainVision Analyzer exports as the EEG, as its users would take them."""
    bids = ds002338.build(tmp_path / "ds002338")
    out, work = tmp_path / "out", tmp_path / "work"
    # relative path option: resolved against the current directory
    proc = run_app(bids, out, "participant", work, *FAST, "--skip-bids-validation",
                   "--task-label", "MIpre", "--eeg-derivatives", "ds002338/derivatives",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    eeg = {s: out / f"sub-{s}" / "eeg" for s in ("xp201", "xp202")}
    m201 = json.loads((eeg["xp201"] / "sub-xp201_task-MIpre_desc-preproc_eeg.json").read_text())
    assert m201["EEGIsDerivative"] is True and "eeg_pp" in m201["Sources"][0]
    assert m201["VolumeMarker"] == "Response/R128"
    # the export starts at the first block marker, 2 s = 2 volumes after the first volume
    spec = json.loads((eeg["xp201"] / "sub-xp201_task-MIpre_desc-stft_spectrogram.json")
                      .read_text())
    assert min(spec["VolumeIndices"]) >= 2
    # its last marker is less than one TR before its end too (both ends inside the run): placed
    # by aligning its markers to the raw recording's, which starts `lead` s before volume 0
    place = m201["EEGPlacement"]
    assert place["Method"].startswith("aligned") and "sub-xp201_task-MIpre_eeg" in \
        place["RawRecording"]
    lead = ds002338.SIZES["small"].lead
    assert place["ShiftSeconds"] == pytest.approx(lead + ds002338.FIRST_BLOCK, abs=0.01)
    assert m201["EEGCoverage"]["CoveredRange"] == [2, ds002338.SIZES["small"].volumes - 1]
    assert spec["EEGPlacement"] == place
    # xp202 has no export for MIpre: raw EEG with our own correction, and a warning naming it
    m202 = json.loads((eeg["xp202"] / "sub-xp202_task-MIpre_desc-preproc_eeg.json").read_text())
    assert m202["EEGIsDerivative"] is False
    assert "sub-xp202" in log and "MIpre" in log
    copy = tmp_path / "group-out"
    shutil.copytree(out, copy)
    proc = run_app(bids, copy, "group", work, *GROUP)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("ds", sorted(CASES))
def test_realistic_size_every_run(ds, tmp_path):
    """Every run of both subjects at a realistic size (150 volumes, 48×48 in-plane)."""
    bids = BUILDERS[ds](tmp_path / ds, size="realistic")
    flags = [f for f in CASES[ds]["flags"] if f == "--skip-bids-validation"]
    proc = run_app(bids, tmp_path / "out", "participant", tmp_path / "w", *FAST, *flags,
                   timeout=3 * 3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bolds = list((tmp_path / "out").rglob("*desc-preproc_bold.nii.gz"))
    eegs = list((tmp_path / "out").rglob("*desc-preproc_eeg.vhdr"))
    n_bold = sum(1 for p in bids.rglob("sub-*_bold.nii.gz") if p.resolve().is_file()
                 and "derivatives" not in p.parts)
    assert len(bolds) == n_bold
    assert eegs
    proc = run_app(bids, tmp_path / "out", "group", tmp_path / "w", *GROUP, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
