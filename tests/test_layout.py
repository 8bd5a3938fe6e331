"""BIDS indexing and BOLD↔EEG pairing, on trees written by real writers and on real recordings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest
from bidsdata import make_dataset, synthetic_raw, write_bold, write_description, write_eeg
from mne_bids import read_raw_bids
from mne_bids.copyfiles import copyfile_brainvision

from bids_eeg2fmri.bids.layout import collect_participants, load_filters, load_layout, read_bold_run
from bids_eeg2fmri.errors import DataError, ExitCode, UsageError, UserError


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> Path:
    """Two sessions, two runs, a second task, an EEG-only and a BOLD-only run."""
    root = tmp_path_factory.mktemp("layout") / "ds"
    for ses in ("pre", "post"):
        for run in (1, 2):
            write_bold(root, "01", ses=ses, run=run, seed=run)
            write_eeg(root, "01", ses=ses, run=run, raw=synthetic_raw(seed=run))
    write_bold(root, "01", ses="pre", task="nback", run=1,
               sidecar={"SliceEncodingDirection": "k-", "RepetitionTime": 1.5,
                        "SliceTiming": [0.0, 0.5, 1.0, 0.25, 0.75, 1.25]}, tr=1.5)
    write_eeg(root, "02", ses="pre", run=1)                 # EEG only
    write_bold(root, "03", ses="pre", run=1)                # BOLD only
    write_description(root)
    return root


def test_pairs_by_entities_and_reports_single_modality_runs(multi):
    plans = collect_participants(load_layout(multi))
    assert [p.subject for p in plans] == ["01", "02", "03"]
    sub01 = {p.name: p for p in plans[0].pairs}
    assert set(sub01) == {"sub-01_ses-pre_task-rest_run-1", "sub-01_ses-pre_task-rest_run-2",
                          "sub-01_ses-post_task-rest_run-1", "sub-01_ses-post_task-rest_run-2",
                          "sub-01_ses-pre_task-nback_run-1"}
    for name, pair in sub01.items():
        if "nback" in name:
            assert pair.kind == "bold-only"
            continue
        assert pair.kind == "paired"
        # the EEG and BOLD of a pair share every identifying entity
        for key in ("subject", "session", "task", "run"):
            assert pair.bold.entities[key] == pair.eeg.entities[key]
    assert plans[1].pairs[0].kind == "eeg-only"
    assert plans[2].pairs[0].kind == "bold-only"


def test_reads_the_metadata_the_stages_need(multi):
    plans = collect_participants(load_layout(multi), participant_label=["01"], task_label=["nback"])
    bold = plans[0].pairs[0].bold
    assert bold.repetition_time == 1.5
    assert bold.slice_encoding_direction == "k-"
    assert bold.slice_timing == [0.0, 0.5, 1.0, 0.25, 0.75, 1.25]
    assert bold.shape == (8, 8, 6, 12) and bold.n_volumes == 12
    rest = collect_participants(load_layout(multi), participant_label=["01"], task_label=["rest"],
                                session_label=["pre"])[0].pairs[0]
    assert rest.eeg.format == "BrainVision"
    assert rest.eeg.sampling_frequency == 250.0


def test_session_and_task_filters(multi):
    layout = load_layout(multi)
    plans = collect_participants(layout, session_label=["post"])
    assert [p.subject for p in plans] == ["01"]
    assert all(pair.entities["session"] == "post" for pair in plans[0].pairs)
    with pytest.raises(UserError) as err:
        collect_participants(layout, participant_label=["77"])
    assert err.value.code == ExitCode.NO_DATA_SELECTED


def test_database_dir_is_created_and_reused(multi, tmp_path):
    db = tmp_path / "pybids_db"
    first = collect_participants(load_layout(multi, db))
    assert any(db.iterdir())
    second = collect_participants(load_layout(multi, db))
    assert [p.name for plan in first for p in plan.pairs] == [p.name for plan in second for p in plan.pairs]


def test_filter_file_keys_are_checked(tmp_path):
    f = tmp_path / "f.json"
    f.write_text(json.dumps({"func": {"subject": "01"}}))
    with pytest.raises(UsageError, match="unknown filter keys"):
        load_filters(f)


def test_bold_checks_name_the_file(tmp_path):
    path = write_bold(tmp_path, "01", sidecar={"RepetitionTime": -1})
    with pytest.raises(DataError, match="positive") as err:
        read_bold_run(path)
    assert path.name in err.value.oneline()
    path = write_bold(tmp_path, "02", sidecar={"SliceTiming": [0, 0.5, 1.0, 1.5, 2.0, 2.5]})
    with pytest.raises(DataError, match=r"\[0, RepetitionTime"):
        read_bold_run(path)


def test_brainvision_with_missing_data_file_is_refused(tmp_path):
    root = make_dataset(tmp_path / "ds", ("01",))
    next(root.rglob("*_eeg.eeg")).unlink()
    with pytest.raises(DataError, match="DataFile"):
        collect_participants(load_layout(root))


# ----------------------------------------------------------------------------- real recordings
REAL_EEG = {
    "BrainVision-mne": ("eeg/mne-python/test.vhdr", "BrainVision"),
    "BrainVision-eeglab": ("eeg/eeglab/testbva.vhdr", "BrainVision"),
    "EDF": ("eeg/mne-python/test.edf", "EDF"),
    "BDF": ("eeg/mne-python/test.bdf", "BDF"),
    "EEGLAB": ("eeg/eeglab/eeglab_data.set", "EEGLAB"),
}


@pytest.mark.parametrize("key", sorted(REAL_EEG))
def test_every_real_eeg_format_reads_through_the_layout(realdata, tmp_path, key):
    rel, fmt = REAL_EEG[key]
    original = mne.io.read_raw(realdata / rel, preload=False, verbose="error")
    root = tmp_path / "ds"
    if rel.endswith(".vhdr") and not (realdata / rel).with_suffix(".eeg").exists():
        # A BrainVision data file named .dat confuses mne-bids' format detection: copy the
        # triplet under BIDS names (the header is rewritten to point at them) by hand.
        eeg_dir = root / "sub-01" / "eeg"
        eeg_dir.mkdir(parents=True)
        vhdr = eeg_dir / "sub-01_task-rest_run-1_eeg.vhdr"
        with pytest.warns(RuntimeWarning, match=".dat"):
            copyfile_brainvision(realdata / rel, vhdr, verbose=False)
        # mne-bids 0.20 renames the data file to .eeg but leaves DataFile=....dat in the header
        # (our layout check refuses such a header); point the header at the renamed file.
        vhdr.write_text(vhdr.read_text().replace("_eeg.dat", "_eeg.eeg"))
        (eeg_dir / "sub-01_task-rest_run-1_eeg.json").write_text(json.dumps(
            {"SamplingFrequency": original.info["sfreq"], "TaskName": "rest"}))
    else:
        # Not preloaded: mne-bids copies the recording in its own format and writes the sidecars.
        write_eeg(root, "01", raw=original)
    write_bold(root, "01")
    write_description(root)
    pair = collect_participants(load_layout(root))[0].pairs[0]
    assert pair.kind == "paired"
    assert pair.eeg.format == fmt
    assert pair.eeg.sampling_frequency == pytest.approx(original.info["sfreq"])
    raw = read_raw_bids(pair.eeg.bids_path(), verbose="error")
    assert raw.info["sfreq"] == pytest.approx(original.info["sfreq"])
    assert raw.ch_names == original.ch_names
    n = min(raw.n_times, 500)
    np.testing.assert_allclose(raw.get_data(stop=n), original.get_data(stop=n), rtol=1e-6, atol=1e-12)


def test_fif_eeg_reads_through_the_layout(realdata, tmp_path):
    """FIF is not a BIDS EEG format, but datasets converted by MNE carry it; we read it too."""
    original = mne.io.read_raw(realdata / "eeg/mne-python/test.vhdr", preload=True, verbose="error")
    root = tmp_path / "ds"
    write_bold(root, "01")
    write_description(root)
    eeg_dir = root / "sub-01" / "eeg"
    eeg_dir.mkdir(parents=True)
    original.save(eeg_dir / "sub-01_task-rest_run-1_eeg.fif", verbose="error")
    (eeg_dir / "sub-01_task-rest_run-1_eeg.json").write_text(json.dumps(
        {"SamplingFrequency": original.info["sfreq"], "TaskName": "rest"}))
    pair = collect_participants(load_layout(root))[0].pairs[0]
    assert pair.eeg.format == "FIF" and pair.kind == "paired"
    raw = read_raw_bids(pair.eeg.bids_path(), verbose="error")
    np.testing.assert_allclose(raw.get_data(stop=200), original.get_data(stop=200))


def test_real_epi_sidecars_are_read(realdata, tmp_path):
    """Vendor SliceTiming conventions (GE, Siemens, multiband repeats) pass our metadata checks."""
    src = realdata / "bold" / "dcm_qa_stc"
    checked = 0
    for nii in sorted(src.glob("*.nii")):
        meta = json.loads(nii.with_suffix(".json").read_text())
        dest = tmp_path / f"sub-01_task-x{checked}_bold.nii"
        shutil.copy(nii, dest)
        dest.with_suffix(".json").write_text(json.dumps(meta))
        if len(nib_shape(dest)) < 4:
            with pytest.raises(DataError, match="4-D"):
                read_bold_run(dest)
            continue
        run = read_bold_run(dest)
        assert run.repetition_time == meta["RepetitionTime"]
        assert len(run.slice_timing) == run.shape[2]
        checked += 1
    assert checked >= 4


def nib_shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    return nib.load(path).shape
