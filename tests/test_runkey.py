"""One run key pairs BOLD with EEG identically at the participant and the group level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bidsdata import synthetic_raw, write_bold, write_description, write_eeg

from bids_eeg2fmri.bids.derivatives import build_path
from bids_eeg2fmri.bids.layout import collect_participants, load_layout
from bids_eeg2fmri.bids.runkey import run_key
from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.group.runfiles import SPACE, find_runs


def _rename(bold: Path, extra: str) -> Path:
    """Insert ``extra`` (e.g. ``dir-AP``) before ``run-`` in a BOLD file and its sidecar."""
    out = None
    for path in (bold, bold.with_name(bold.name.replace(".nii.gz", ".json"))):
        new = path.with_name(path.name.replace("_run-", f"_{extra}_run-"))
        path.rename(new)
        out = out or new
    return out


def _derivatives(out: Path, bold: Path, eeg: Path) -> None:
    """Empty participant outputs named as the participant level names them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "d", "BIDSVersion": "1.10.0", "DatasetType": "derivative"}))
    for path in (build_path(out, bold, suffix="bold", extension=".nii.gz", space=SPACE,
                            desc="preproc"),
                 build_path(out, eeg, suffix="spectrogram", extension=".h5", desc="stft")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.mark.parametrize("extra", ["dir-AP", "rec-moco", "echo-1"])
def test_bold_only_entities_pair_identically_at_both_levels(tmp_path, extra):
    root = tmp_path / "ds"
    bold = _rename(write_bold(root, "01", run=1), extra)
    eeg = write_eeg(root, "01", run=1, raw=synthetic_raw(seed=1))
    write_description(root)
    pairs = collect_participants(load_layout(root))[0].pairs
    assert [(p.name, p.kind) for p in pairs] == [("sub-01_task-rest_run-1", "paired")]
    _derivatives(tmp_path / "out", bold, eeg)
    runs = find_runs(tmp_path / "out")
    assert [(r.key, r.paired) for r in runs] == [(pairs[0].name, True)]


def test_run_key_reads_short_and_long_names_and_refuses_two_bold_series(tmp_path):
    assert run_key({"subject": "01", "session": "a", "task": "rest", "acquisition": "x",
                    "run": 2, "direction": "AP"}) == "sub-01_ses-a_task-rest_acq-x_run-2"
    assert run_key({"sub": "01", "task": "rest", "dir": "AP", "echo": "1"}) == "sub-01_task-rest"
    root = tmp_path / "ds"
    first = _rename(write_bold(root, "01", run=1), "dir-AP")
    eeg = write_eeg(root, "01", run=1, raw=synthetic_raw(seed=1))
    _derivatives(tmp_path / "out", first, eeg)
    second = build_path(tmp_path / "out", str(first).replace("dir-AP", "dir-PA"), suffix="bold",
                        extension=".nii.gz", space=SPACE, desc="preproc")
    second.write_bytes(b"")
    with pytest.raises(DataError, match="two derivatives for run sub-01_task-rest_run-1"):
        find_runs(tmp_path / "out")


def test_outputs_of_one_source_at_two_resolutions_are_not_refused(tmp_path):
    root = tmp_path / "ds"
    bold = write_bold(root, "01", run=1)
    eeg = write_eeg(root, "01", run=1, raw=synthetic_raw(seed=1))
    _derivatives(tmp_path / "out", bold, eeg)
    other = build_path(tmp_path / "out", bold, suffix="bold", extension=".nii.gz", space=SPACE,
                       res=4, desc="preproc")
    other.write_bytes(b"")
    assert [r.key for r in find_runs(tmp_path / "out")] == ["sub-01_task-rest_run-1"]
