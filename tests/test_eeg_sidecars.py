"""Sidecars and data files as public datasets publish them: inheritance, hand-written tables,
unfetched files, header/sidecar disagreements."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import pytest
from bidsdata import write_bold
from reallayouts.common import LAYOUTS

from bids_eeg2fmri.bids.layout import read_bold_run, unusable
from bids_eeg2fmri.eeg import sidecars
from bids_eeg2fmri.fmri import stages


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_inheritance_finds_task_level_files_general_first(tmp_path):
    _touch(tmp_path / "dataset_description.json", "{}")
    top = _touch(tmp_path / "task-1dNF_channels.tsv")
    other = _touch(tmp_path / "task-MIpre_channels.tsv")
    sub = _touch(tmp_path / "sub-01" / "sub-01_task-1dNF_eeg.json")
    own = _touch(tmp_path / "sub-01" / "eeg" / "sub-01_task-1dNF_run-01_channels.tsv")
    other_run = _touch(tmp_path / "sub-01" / "eeg" / "sub-01_task-1dNF_run-02_channels.tsv")
    junk = _touch(tmp_path / "sub-01" / "eeg" / "._sub-01_task-1dNF_run-01_channels.tsv")
    data = _touch(tmp_path / "sub-01" / "eeg" / "sub-01_task-1dNF_run-01_eeg.vhdr")
    found = sidecars.find_sidecars(data)
    assert found == [top, sub, own]
    assert other not in found and other_run not in found and junk not in found
    assert sidecars.applicable(found, "_channels.tsv") == own


@pytest.mark.skipif(not LAYOUTS.is_dir(), reason="no real layouts")
def test_published_space_separated_channels_tsv_is_read_with_its_ecg():
    table = sidecars.read_tsv(LAYOUTS / "ds002338" / "tree" / "task-1dNF_channels.tsv")
    assert "columns are separated by spaces, not tabs" in table.problems
    assert "values are quoted" in table.problems
    types, bads = sidecars.channel_types(table)
    assert len(types) == 64 and bads == []
    assert types["ECG"] == "ecg" and types["Fp1"] == "eeg"  # typographic quote stripped too
    assert sidecars.read_tsv(LAYOUTS / "ds002338" / "tree" / "task-1dNF_events.tsv").problems == []


def test_trailing_tabs_are_a_problem_but_rows_survive(tmp_path):
    tsv = _touch(tmp_path / "task-x_events.tsv", "onset\tduration\ttrial_type\n2\t20\tRest\t\n"
                 "22\t20\tTask\n")
    table = sidecars.read_tsv(tsv)
    assert table.problems == ["some rows end with extra tabs"]
    assert [r["trial_type"] for r in table.rows] == ["Rest", "Task"]


@pytest.mark.parametrize("name,is_ecg", [("ECG", True), ("EKG", True), ("ecg1", True),
                                         ("ECG_2", True), ("EKG chest", True), ("TP10", False),
                                         ("ECGX1Y", True), ("Fp1", False), ("EOG", False)])
def test_ecg_found_by_name(name, is_ecg):
    assert (sidecars.ecg_by_name([name]) == [name]) is is_ecg


def test_digest_changes_when_a_sidecar_or_the_marker_file_changes(tmp_path):
    _touch(tmp_path / "dataset_description.json", "{}")
    tsv = _touch(tmp_path / "task-rest_channels.tsv", "name\ttype\nECG\tECG\n")
    vhdr = _touch(tmp_path / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr",
                  "DataFile=sub-01_task-rest_eeg.eeg\nMarkerFile=sub-01_task-rest_eeg.vmrk\n")
    vmrk = _touch(vhdr.with_suffix(".vmrk"), "Mk1=Response,R128,1,1,0\n")
    first = sidecars.eeg_inputs_digest(vhdr)
    assert sidecars.eeg_inputs_digest(vhdr) == first
    tsv.write_text("name\ttype\nECG\tMISC\n")
    second = sidecars.eeg_inputs_digest(vhdr)
    assert second != first
    vmrk.write_text("Mk1=Response,R128,2,1,0\n")
    assert sidecars.eeg_inputs_digest(vhdr) != second


def test_unusable_files_are_named_with_the_reason(tmp_path):
    good = _touch(tmp_path / "a_bold.nii.gz", "data")
    assert unusable(good) is None
    assert "macOS" in unusable(_touch(tmp_path / "._a_bold.nii.gz"))
    assert "0 bytes" in unusable(_touch(tmp_path / "b_bold.nii.gz", ""))
    link = tmp_path / "c_bold.nii.gz"
    os.symlink(".git/annex/objects/xx/yy/KEY/KEY", link)
    assert "not fetched" in unusable(link)
    vhdr = _touch(tmp_path / "d_eeg.vhdr", "DataFile=d_eeg.eeg\nMarkerFile=d_eeg.vmrk\n")
    _touch(tmp_path / "d_eeg.vmrk")
    os.symlink(".git/annex/objects/xx/yy/K2/K2", tmp_path / "d_eeg.eeg")
    assert "DataFile d_eeg.eeg is not fetched" in unusable(vhdr)


def test_header_tr_disagreeing_with_the_sidecar_warns_and_the_sidecar_wins(tmp_path, caplog):
    path = write_bold(tmp_path, "01", sidecar={"SliceTiming": None}, tr=2.0)
    img = nib.load(path)
    img.header["pixdim"][4] = 2.5
    nib.save(nib.Nifti1Image(img.get_fdata(), img.affine, img.header), path)
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.bids"):
        run = read_bold_run(path)
    assert run.repetition_time == 2.0 and run.slice_timing is None
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "TR 2.5 s (pixdim[4]) but RepetitionTime is 2 s" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        info = stages.prepare(path, tmp_path / "out.nii", dummy_scans=0)
    assert info["slice_timing_corrected"] is False
    assert any("no SliceTiming" in r.getMessage() for r in caplog.records)
    caplog.clear()
    ok = write_bold(tmp_path / "b", "01", tr=2.0)
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.bids"):
        read_bold_run(ok)
    assert not caplog.records


def test_odd_sidecar_json_does_not_matter_for_the_table_reader(tmp_path):
    # BOM and CRLF line ends from Windows editors
    tsv = tmp_path / "task-x_channels.tsv"
    tsv.write_bytes("\ufeffname\ttype\r\nECG\tECG\r\n".encode())
    table = sidecars.read_tsv(tsv)
    assert table.problems == [] and table.rows == [{"name": "ECG", "type": "ECG"}]
    assert json.loads(json.dumps(table.rows))  # plain data


def test_macos_files_beside_a_run_are_ignored_with_one_warning_each(tmp_path, caplog):
    from bidsdata import write_description

    from bids_eeg2fmri.bids.layout import collect_participants, load_layout

    write_description(tmp_path)
    bold = write_bold(tmp_path, "01")
    junk = [bold.parent / f"._{bold.name}", bold.parent / f"._{bold.name[:-7]}.json"]
    for j in junk:
        j.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.bids"):
        plans = collect_participants(load_layout(tmp_path))
    assert plans[0].pairs[0].bold.repetition_time == 2.0
    for j in junk:
        assert sum(str(j) in r.getMessage() for r in caplog.records) == 1
