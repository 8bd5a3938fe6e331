"""The participant level end to end: outputs, read-only input, caching, kill -9 and resume."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import tree_hash
from faultdata import plant_nan_voxel, session_processes

from bids_eeg2fmri.cli.run import main as app_main
from bids_eeg2fmri.simulate import SimulationParams, simulate_dataset

APP = [sys.executable, "-m", "bids_eeg2fmri.cli.run"]
# Small but complete: one paired participant and one EEG-only participant.
SIM = dict(subjects=1, eeg_only_subjects=1, volumes=30, grid=(32, 32, 18), voxel_size=(6.0, 6.0, 7.0),
           channels=16, seed=3)
# --omp-nthreads 1: ITK's threaded metrics are not bit-reproducible (see cli.run.limit_threads).
FAST = ["--registration", "affine", "--skip-bids-validation", "--nprocs", "2", "--omp-nthreads", "1"]


def _data_files(out: Path) -> dict[str, str]:
    """Hashes of the per-run derivatives (reports and logs hold paths and are left out)."""
    files = {}
    for path in sorted(out.glob("sub-*/*/*")):
        if path.parent.name in ("func", "eeg", "anat") and path.is_file():
            files[path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _app(bids: Path, out: Path, work: Path) -> None:
    """Run the participant level in a new process and require success."""
    proc = subprocess.run([*APP, str(bids), str(out), "participant", "-w", str(work), *FAST],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def bids(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plevel") / "bids"
    simulate_dataset(root, SimulationParams(**SIM))
    return root


@pytest.fixture(scope="module")
def reference(bids, tmp_path_factory) -> tuple[Path, Path, str, str]:
    """One uninterrupted run; returns output, work dir and the input hash before and after."""
    base = tmp_path_factory.mktemp("ref")
    before = tree_hash(bids)
    # A fresh process, like the resumed run below: ITK reads its thread cap when it first loads.
    _app(bids, base / "out", base / "work")
    return base / "out", base / "work", before, tree_hash(bids)


def test_outputs_of_paired_and_eeg_only_participants(reference):
    out, _, _, _ = reference
    files = _data_files(out)
    expected = [
        "sub-01/func/sub-01_task-rest_run-1_space-MNI152NLin2009aSym_res-2_desc-preproc_bold.nii.gz",
        "sub-01/func/sub-01_task-rest_run-1_space-MNI152NLin2009aSym_res-2_desc-brain_mask.nii.gz",
        "sub-01/func/sub-01_task-rest_run-1_desc-confounds_timeseries.tsv",
        "sub-01/func/sub-01_task-rest_run-1_space-boldref_boldref.nii.gz",
        "sub-01/eeg/sub-01_task-rest_run-1_desc-preproc_eeg.vhdr",
        "sub-01/eeg/sub-01_task-rest_run-1_desc-stft_spectrogram.h5",
        "sub-01/eeg/sub-01_task-rest_run-1_desc-bandpower_timeseries.tsv",
        "sub-02/eeg/sub-02_task-rest_run-1_desc-stft_spectrogram.h5",
    ]
    for name in expected:
        assert name in files, name
    assert not any(name.startswith("sub-02/func") for name in files)
    assert (out / "sub-01.html").is_file() and (out / "sub-02.html").is_file()
    assert (out / "logs" / "CITATION.md").is_file()
    bold = nib.load(out / expected[0])
    assert bold.ndim == 4 and bold.shape[:3] == (99, 117, 95)
    assert np.isfinite(np.asarray(bold.dataobj[..., 0])).all()


def test_input_is_byte_identical(reference):
    _, _, before, after = reference
    assert before == after


def test_second_run_is_a_no_op(reference, bids):
    out, work, _, _ = reference
    def stamps():
        return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.glob("sub-*/*/*")
                if p.parent.name in ("func", "eeg")}

    before = stamps()
    assert before
    _app(bids, out, work)
    # Cached nodes do not run again, so no derivative is rewritten (the reports are redrawn).
    assert stamps() == before


def test_deleted_or_changed_outputs_are_rewritten(reference, bids):
    """Saving nodes run even when cached: a cleared output folder is filled again, byte for byte,
    from the same work dir, and a changed derivative is put back."""
    out, work, _, _ = reference
    before = _data_files(out)
    assert len(before) > 8
    shutil.rmtree(out)
    _app(bids, out, work)
    assert _data_files(out) == before
    tsv = next(out.glob("sub-01/func/*_desc-confounds_timeseries.tsv"))
    tsv.write_text("changed\n")
    _app(bids, out, work)
    assert _data_files(out) == before


def test_kill_9_then_resume_gives_the_uninterrupted_outputs(reference, bids, tmp_path):
    ref_out, _, _, _ = reference
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [*APP, str(bids), str(out), "participant", "-w", str(work), *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # Kill once the first derivatives exist, i.e. midway through the graph.
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if any(out.glob("sub-*/*/*_desc-*")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # Whatever carries a final name is complete: it reads back in full.
    for path in out.glob("sub-*/*/*.nii.gz"):
        if not path.name.startswith("."):
            np.asarray(nib.load(path).dataobj)
    partial = _data_files(out)
    assert partial != _data_files(ref_out)
    _app(bids, out, work)
    assert not list(out.rglob(".tmp-*"))
    assert _data_files(out) == _data_files(ref_out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_of_the_main_process_at_a_random_step_then_resume(reference, bids, tmp_path, seed):
    """kill -9 of the main process alone after a random number of finished steps: its workers
    exit by themselves, and the resumed run's outputs equal the uninterrupted run's byte for byte
    (the worker processes of the two runs ran different step sequences)."""
    ref_out, ref_work, _, _ = reference
    n_steps = len(list(ref_work.rglob("result_*.pklz")))
    target = random.Random(seed).randint(1, n_steps - 1)
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.Popen([*APP, str(bids), str(out), "participant", "-w", str(work), *FAST],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(list(work.rglob("result_*.pklz"))) >= target:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 10
    while time.time() < deadline and session_processes(proc.pid):
        time.sleep(0.1)
    assert not session_processes(proc.pid), "workers outlived the main process"
    _app(bids, out, work)
    assert _data_files(out) == _data_files(ref_out)


def test_bad_voxels_exit_65_naming_the_file(bids, tmp_path, capsys):
    broken = tmp_path / "bids"
    simulate_dataset(broken, SimulationParams(**{**SIM, "eeg_only_subjects": 0}))
    bold = next((broken / "sub-01" / "func").glob("*_bold.nii.gz"))
    plant_nan_voxel(bold)
    code = app_main([str(broken), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"),
                     *FAST])
    err = capsys.readouterr().err
    assert code == 65
    assert bold.name in err and "NaN" in err
