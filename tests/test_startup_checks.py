"""Checks that run before any work: filter entities, readable inputs, --model-dir, config logs."""

from __future__ import annotations

import json
import os
import tomllib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from bidsdata import make_dataset

from bids_eeg2fmri.cli.run import main
from bids_eeg2fmri.group import card as C
from bids_eeg2fmri.modelfiles import sha256
from modelfolder import make_model_folder

APP = [sys.executable, "-m", "bids_eeg2fmri.cli.run"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("startup") / "ds", ("01",), bold_only=("04",))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("m") / "ridge")


def _run(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert "Traceback" not in err
    assert code == 0 or len(lines) == 1, err
    return code, lines[0] if lines else ""


def _no_work_done(tmp_path: Path) -> bool:
    """The path checks may create the folders, but nothing was written into them."""
    return all(not folder.exists() or not any(folder.iterdir())
               for folder in (tmp_path / "work", tmp_path / "out"))


def _participant(dataset, tmp_path, *extra):
    return [dataset, tmp_path / "out", "participant", "-w", tmp_path / "work",
            "--skip-bids-validation", *extra]


def test_misspelled_filter_entity_exits_64_before_any_work(dataset, tmp_path, capsys):
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"acquisiton": "fast"}}))
    code, line = _run(_participant(dataset, tmp_path, "--bids-filter-file", filt), capsys)
    assert code == 64
    assert "filter.json" in line and "'acquisiton'" in line and "'acquisition'" in line
    assert _no_work_done(tmp_path)


def test_filter_matching_nothing_exits_64(dataset, tmp_path, capsys):
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"task": "nback"}}))
    code, line = _run(_participant(dataset, tmp_path, "--bids-filter-file", filt), capsys)
    assert code == 64 and "matches none of the 2 bold file(s)" in line
    filt.write_text(json.dumps({"bold": {"task": "rest"}}))
    code, _ = _run(_participant(dataset, tmp_path, "--bids-filter-file", filt, "--dry-run"), capsys)
    assert code == 0


def test_broken_t1w_link_exits_65_with_use_t1w(dataset, tmp_path, capsys):
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    anat = ds / "sub-01" / "anat"
    anat.mkdir()
    (anat / "sub-01_T1w.nii.gz").symlink_to("../../.git/annex/objects/missing.nii.gz")
    code, _ = _run(_participant(ds, tmp_path / "dry", "--dry-run"), capsys)
    assert code == 0  # the T1w is not read without --use-t1w
    code, line = _run(_participant(ds, tmp_path, "--use-t1w"), capsys)
    assert code == 65
    assert "sub-01_T1w.nii.gz" in line and "broken symbolic link" in line
    assert _no_work_done(tmp_path)


def test_model_dir_is_checked_before_any_work(dataset, model, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    data = bytearray((bad / C.MODEL_FILE).read_bytes())
    data[-1] ^= 1
    (bad / C.MODEL_FILE).write_bytes(bytes(data))
    started = time.monotonic()
    code, line = _run(_participant(dataset, tmp_path, "--model-dir", bad), capsys)
    assert code == 65 and "does not match the model card" in line and C.MODEL_FILE in line
    assert time.monotonic() - started < 60
    assert _no_work_done(tmp_path)


def test_pickle_payload_in_model_dir_never_runs(dataset, model, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Payload()}, bad / C.MODEL_FILE)
    card = json.loads((bad / C.CARD_FILE).read_text())
    card["Files"][C.MODEL_FILE] = sha256(bad / C.MODEL_FILE)  # the attacker re-pins the card
    (bad / C.CARD_FILE).write_text(json.dumps(card))
    code, line = _run(_participant(dataset, tmp_path, "--model-dir", bad), capsys)
    assert code == 65 and "not a safetensors model file" in line
    assert not marker.exists()


def test_model_dir_needs_the_modality_it_reads(dataset, model, tmp_path, capsys):
    code, line = _run(_participant(dataset, tmp_path, "--participant-label", "04",
                                   "--model-dir", model), capsys)
    assert code == 65 and "reads EEG" in line
    code, _ = _run(_participant(dataset, tmp_path, "--participant-label", "01",
                                "--model-dir", model, "--dry-run"), capsys)
    assert code == 0


def test_concurrent_runs_keep_their_own_config_logs(dataset, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([*APP, str(dataset), str(out), "participant", "--dry-run",
                               "--skip-bids-validation", "--participant-label", label],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for label in ("01", "04")]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    logs = sorted((out / "logs").glob("config-*-*.toml"))
    assert len(logs) == 2
    labels = sorted(tomllib.loads(p.read_text())["execution"]["participant_label"] for p in logs)
    assert labels == [["01"], ["04"]]


@pytest.mark.parametrize("where", ["vhdr", "channels.tsv"])
def test_duplicate_channel_names_are_named_at_startup(dataset, tmp_path, capsys, where):
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    eeg = ds / "sub-01" / "eeg"
    if where == "vhdr":
        path = next(eeg.glob("*_eeg.vhdr"))
        lines = path.read_text(encoding="utf-8").splitlines()
        first = next(line for line in lines if line.startswith("Ch1="))
        name = first.split("=", 1)[1].split(",")[0]
        lines = [f"Ch2={name}," + line.split("=", 1)[1].split(",", 1)[1]
                 if line.startswith("Ch2=") else line for line in lines]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path = next(eeg.glob("*_channels.tsv"))
        rows = path.read_text().splitlines()
        name = rows[1].split("\t")[0]
        rows[2] = "\t".join([name, *rows[2].split("\t")[1:]])
        path.write_text("\n".join(rows) + "\n")
    code, line = _run(_participant(ds, tmp_path), capsys)
    assert code == 65
    assert path.name in line and f"duplicate channel names {name} (×2)" in line
    assert _no_work_done(tmp_path)
