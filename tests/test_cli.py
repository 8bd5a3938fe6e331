"""The BIDS-App command line: arguments, exit codes, one-line errors, read-only input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bidsdata import make_dataset, write_bold
from conftest import tree_hash

from bids_eeg2fmri import __version__
from bids_eeg2fmri.cli.run import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("cli") / "ds", ("01", "02"), eeg_only=("03",),
                        bold_only=("04",))


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the app in-process; every run must leave the input tree byte-identical."""
    bids_dir = Path(argv[0]) if argv and Path(argv[0]).is_dir() else None
    # An output folder under derivatives/ is the one change the BIDS-Apps spec permits.
    before = tree_hash(bids_dir, exclude=("derivatives",)) if bids_dir else None
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if bids_dir is not None:
        assert tree_hash(bids_dir, exclude=("derivatives",)) == before, "the input was modified"
    return code, out, err


def _assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bids-eeg2fmri {__version__}"


def test_console_script_reports_version_and_exit_codes(tmp_path):
    exe = Path(sys.executable).parent / "bids-eeg2fmri"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and __version__ in out.stdout
    bad = subprocess.run([exe, tmp_path / "nope", tmp_path / "out", "participant"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 66
    assert "Traceback" not in bad.stderr and "nope" in bad.stderr


def test_participant_plan_pairs_runs_and_keeps_input_intact(dataset, tmp_path, capsys):
    before = tree_hash(dataset)
    code, out, err = _run([dataset, tmp_path / "out", "participant", "--dry-run"], capsys)
    assert code == 0, err
    assert "sub-01_task-rest_run-1" in out and "paired" in out
    assert "sub-03_task-rest_run-1" in out and "eeg-only" in out
    assert "sub-04_task-rest_run-1" in out and "bold-only" in out
    desc = json.loads((tmp_path / "out" / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Version"] == __version__
    assert len(list((tmp_path / "out" / "logs").glob("config-*-*.toml"))) == 1
    assert tree_hash(dataset) == before


def test_participant_label_selects(dataset, tmp_path, capsys):
    code, out, _ = _run([dataset, tmp_path / "out", "participant", "--participant-label", "sub-02",
                         "--skip-bids-validation", "--dry-run"], capsys)
    assert code == 0
    assert "sub-02" in out and "sub-01" not in out


def test_group_level_needs_participant_outputs(dataset, tmp_path, capsys):
    code, _, err = _run([dataset, tmp_path / "empty", "group"], capsys)
    assert code == 66
    _assert_one_line_error(err, "participant level first")
    assert _run([dataset, tmp_path / "out", "participant", "--skip-bids-validation", "--dry-run"],
                capsys)[0] == 0
    # A dry run writes the dataset description but no derivative: still nothing to train on.
    code, _, err = _run([dataset, tmp_path / "out", "group"], capsys)
    assert code == 66
    _assert_one_line_error(err, "participant level first")


@pytest.mark.parametrize("argv_tail, code, fragment", [
    (["participnt"], 17, "participnt"),
    ([], 64, "analysis_level"),
    (["participant", "--no-such-flag"], 64, "--no-such-flag"),
    (["participant", "--output-res", "7"], 64, "output-res"),
    (["participant", "--participant-label", "99"], 18, "sub-99"),
    (["participant", "--task-label", "nback"], 18, "no BOLD or EEG"),
    (["participant", "--slice-time-ref", "1.5"], 64, "slice_time_ref"),
])
def test_usage_and_selection_errors(dataset, tmp_path, capsys, argv_tail, code, fragment):
    before = tree_hash(dataset)
    got, _, err = _run([dataset, tmp_path / "out", *argv_tail], capsys)
    assert got == code
    _assert_one_line_error(err, fragment)
    assert tree_hash(dataset) == before


def test_missing_and_empty_input(tmp_path, capsys):
    code, _, err = _run([tmp_path / "missing", tmp_path / "out", "participant"], capsys)
    assert code == 66
    _assert_one_line_error(err, "missing", "does not exist")
    (tmp_path / "empty").mkdir()
    code, _, err = _run([tmp_path / "empty", tmp_path / "out", "participant"], capsys)
    assert code == 66
    _assert_one_line_error(err, "empty")


def test_no_dataset_description(tmp_path, capsys):
    root = tmp_path / "nodesc"
    write_bold(root, "01")
    code, _, err = _run([root, tmp_path / "out", "participant"], capsys)
    assert code == 66
    _assert_one_line_error(err, "dataset_description.json")


def test_validation_failure_exits_16(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ("01",))
    # Drop RepetitionTime: the official validator reports it as an error.
    sidecar = next(root.rglob("*_bold.json"))
    meta = json.loads(sidecar.read_text())
    meta.pop("RepetitionTime")
    sidecar.write_text(json.dumps(meta))
    before = tree_hash(root)
    code, _, err = _run([root, tmp_path / "out", "participant"], capsys)
    assert code == 16
    _assert_one_line_error(err, "BIDS validation failed")
    assert tree_hash(root) == before
    # Without validation our own reader names the file and the problem (65).
    code, _, err = _run([root, tmp_path / "out", "participant", "--skip-bids-validation"], capsys)
    assert code == 65
    _assert_one_line_error(err, sidecar.name.replace(".json", ".nii.gz"), "RepetitionTime")


def test_truncated_nifti_exits_65(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ("01",))
    bold = next(root.rglob("*_bold.nii.gz"))
    raw = gzip.decompress(bold.read_bytes())
    bold.write_bytes(gzip.compress(raw[: len(raw) * 2 // 3]))
    code, _, err = _run([root, tmp_path / "out", "participant", "--skip-bids-validation"], capsys)
    assert code == 65
    _assert_one_line_error(err, bold.name, "truncated")


def test_bad_slice_timing_exits_65(tmp_path, capsys):
    root = tmp_path / "ds"
    make_dataset(root, ("01",))
    sidecar = next(root.rglob("*_bold.json"))
    meta = json.loads(sidecar.read_text())
    meta["SliceTiming"] = meta["SliceTiming"][:-1]
    sidecar.write_text(json.dumps(meta))
    code, _, err = _run([root, tmp_path / "out", "participant", "--skip-bids-validation"], capsys)
    assert code == 65
    _assert_one_line_error(err, "SliceTiming has 5 entries")


def test_unwritable_output_exits_73(dataset, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = _run([dataset, blocker / "out", "participant", "--skip-bids-validation"], capsys)
    assert code == 73
    _assert_one_line_error(err, "cannot write")


def test_output_inside_input_only_under_derivatives(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", ("01",))
    before = tree_hash(root)
    code, _, err = _run([root, root / "out", "participant", "--skip-bids-validation"], capsys)
    assert code == 64
    _assert_one_line_error(err, "inside the input dataset")
    code, _, err = _run([root, root, "participant", "--skip-bids-validation"], capsys)
    assert code == 64
    assert tree_hash(root) == before
    code, _, err = _run([root, root / "derivatives" / "eeg2fmri", "participant",
                         "--skip-bids-validation", "--dry-run"], capsys)
    assert code == 0, err
    assert (root / "derivatives" / "eeg2fmri" / "dataset_description.json").is_file()


def test_filter_file_restricts_selection(dataset, tmp_path, capsys):
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"subject": "01"}, "eeg": {"subject": "01"}}))
    code, out, _ = _run([dataset, tmp_path / "out", "participant", "--skip-bids-validation",
                         "--dry-run", "--bids-filter-file", filt], capsys)
    assert code == 0
    assert "sub-01" in out and "sub-02" not in out
    filt.write_text("{not json")
    code, _, err = _run([dataset, tmp_path / "out", "participant", "--skip-bids-validation",
                         "--bids-filter-file", filt], capsys)
    assert code == 64
    _assert_one_line_error(err, "filter.json")


def test_debug_shows_traceback(tmp_path, capsys):
    code, _, err = _run([tmp_path / "missing", tmp_path / "out", "participant", "--debug"], capsys)
    assert code == 66
    assert "Traceback" in err
