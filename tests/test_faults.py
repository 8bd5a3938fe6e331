"""Failures part-way through a run: one line per failed step, exit codes by cause, interrupts."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultdata import plant_nan_voxel, session_processes

from bids_eeg2fmri import crashfiles
from bids_eeg2fmri.cli.run import main as app_main
from bids_eeg2fmri.errors import ExitCode, from_oserror
from bids_eeg2fmri.simulate import SimulationParams, simulate_dataset

APP = [sys.executable, "-m", "bids_eeg2fmri.cli.run"]
SIM = dict(volumes=30, grid=(32, 32, 18), voxel_size=(6.0, 6.0, 7.0), channels=16, seed=3)
FAST = ["--registration", "affine", "--skip-bids-validation", "--omp-nthreads", "1"]


@pytest.fixture(scope="module")
def paired(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "paired"
    simulate_dataset(root, SimulationParams(subjects=1, eeg_only_subjects=0, **SIM))
    return root


@pytest.fixture(scope="module")
def eeg_only(tmp_path_factory) -> Path:
    """The quickest complete participant run: one EEG recording, no BOLD."""
    root = tmp_path_factory.mktemp("faults") / "eeg"
    simulate_dataset(root, SimulationParams(subjects=0, eeg_only_subjects=1, **SIM))
    return root


@pytest.fixture(scope="module")
def nan_bold(tmp_path_factory, paired) -> Path:
    """The paired dataset with one NaN voxel: the fMRI preparation step fails."""

    root = tmp_path_factory.mktemp("faults") / "nan"
    shutil.copytree(paired, root)
    plant_nan_voxel(next((root / "sub-01" / "func").glob("*_bold.nii.gz")))
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _app(bids: Path, out: Path, work: Path, *extra: str) -> subprocess.CompletedProcess:
    """The participant level in a new process (default ``--nprocs 2``)."""
    return subprocess.run([*APP, str(bids), str(out), "participant", "-w", str(work), *FAST,
                           *(extra or ("--nprocs", "2"))],
                          capture_output=True, text=True, timeout=900, env=_env())


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


# ----------------------------------------------------------------------------- one line per error
@pytest.mark.parametrize("nprocs", ["1", "2"])
def test_step_error_is_one_line_without_traceback(nan_bold, tmp_path, nprocs):
    proc = _app(nan_bold, tmp_path / "out", tmp_path / "w", "--nprocs", nprocs)
    assert proc.returncode == 65, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = _error_lines(proc.stderr)
    # The failed step (naming the file and the problem), then the summary.
    assert len(lines) == 2, proc.stderr
    assert "_bold.nii.gz" in lines[0] and "NaN" in lines[0]
    crash = next((tmp_path / "out" / "logs" / "crash").glob("crash-*.txt"))
    assert "Traceback" in crash.read_text() and str(crash) in lines[0]


def test_debug_shows_the_step_traceback(nan_bold, tmp_path):
    proc = _app(nan_bold, tmp_path / "out", tmp_path / "w", "--nprocs", "1", "--debug")
    assert proc.returncode == 65
    assert "Traceback" in proc.stderr + proc.stdout


# ----------------------------------------------------------------------------- exit codes by cause
@pytest.mark.parametrize("number, code, words", [
    (errno.ENOSPC, ExitCode.IO, "no space left on device"),
    (errno.EACCES, ExitCode.CANT_CREATE, "Permission denied"),
    (errno.EROFS, ExitCode.CANT_CREATE, "Read-only file system"),
    (errno.EPERM, ExitCode.CANT_CREATE, "Operation not permitted"),
])
@pytest.mark.parametrize("nprocs", ["1", "2"])
def test_os_error_in_a_saving_step_exits_by_cause(eeg_only, tmp_path, number, code, words, nprocs):
    """An injected OSError where a derivative is written; the message names the output folder.

    The steps run in fork-server workers, which do not share a test's monkeypatching: the fault
    is planted by a ``sitecustomize`` module that every Python process of the run imports."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import os\n"
        "from bids_eeg2fmri.interfaces import derivatives\n"
        "class Failing:\n"
        "    @staticmethod\n"
        "    def copyfile(src, dst):\n"
        f"        raise OSError({number}, os.strerror({number}), str(src), None, str(dst))\n"
        "derivatives.shutil = Failing\n")
    out = tmp_path / "out"
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(inject), env["PYTHONPATH"]])
    proc = subprocess.run([*APP, str(eeg_only), str(out), "participant", "-w",
                           str(tmp_path / "w"), *FAST, "--nprocs", nprocs],
                          capture_output=True, text=True, env=env, timeout=600)
    err = proc.stderr
    assert proc.returncode == code, err
    lines = _error_lines(err)
    assert "Traceback" not in err and lines
    assert all(words in line and str(out / "sub-01" / "eeg") in line for line in lines[:-1]), err


def test_os_error_in_the_main_process_exits_by_cause(eeg_only, tmp_path, monkeypatch, capsys):
    """Writing the dataset description hits a full disk: 74, one line naming the folder."""
    from bids_eeg2fmri.cli import run as run_module

    def full(out_dir, sources, **links):
        raise OSError(errno.ENOSPC, "No space left on device",
                      str(Path(out_dir) / "dataset_description.json"))

    monkeypatch.setattr(run_module, "write_dataset_description", full)
    out = tmp_path / "out"
    code = app_main([str(eeg_only), str(out), "participant", "-w", str(tmp_path / "w"), *FAST])
    err = capsys.readouterr().err
    assert code == 74 and "Traceback" not in err
    assert _error_lines(err) == [f"bids-eeg2fmri: error: {out}: no space left on device"]


def test_errno_mapping():
    assert from_oserror(OSError(errno.EDQUOT, "Disk quota exceeded", "/x/y")).code == ExitCode.IO
    assert from_oserror(PermissionError(errno.EACCES, "Permission denied", "/x")).code == 73
    assert from_oserror(OSError(errno.EIO, "Input/output error", "/x")).code == ExitCode.IO
    h5 = ("OSError: Unable to create file (unable to open file: name = '/o/sub-01/eeg/x.h5', "
          "errno = 28, error message = 'No space left on device', flags = 13)")
    assert crashfiles.classify_crash(h5) == (ExitCode.IO, "/o/sub-01/eeg: no space left on device")
    assert crashfiles.classify_crash("ValueError: [Errno 2] No such file") is None


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.mark.slow
def test_full_tmpfs_output_exits_74(paired, tmp_path):
    """A real full disk: a 3 MB tmpfs as the output folder (needs mount; skipped without)."""
    out = tmp_path / "small"
    out.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(out)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        proc = _app(paired, out / "out", tmp_path / "w")
    finally:
        subprocess.run(["umount", "-l", str(out)])
    assert proc.returncode == 74, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert any("no space left on device" in line and str(out) in line
               for line in _error_lines(proc.stderr))


def test_read_only_output_subfolder_exits_73(eeg_only, tmp_path):
    """``OUT/sub-01`` on a read-only bind mount (what ``chattr +i`` does to root): 73."""
    sub = tmp_path / "out" / "sub-01"
    sub.mkdir(parents=True)
    if not (_mount("--bind", str(sub), str(sub))
            and _mount("-o", "remount,ro,bind", str(sub))):
        subprocess.run(["umount", str(sub)], capture_output=True)
        pytest.skip("cannot make a read-only bind mount here")
    try:
        proc = _app(eeg_only, tmp_path / "out", tmp_path / "w")
    finally:
        subprocess.run(["umount", str(sub)])
    assert proc.returncode == 73, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert all(str(sub) in line for line in _error_lines(proc.stderr)[:-1])


# ----------------------------------------------------------------------------- interrupts
def _start_and_wait_for_workers(bids: Path, tmp_path: Path, nprocs: int = 2) -> subprocess.Popen:
    proc = subprocess.Popen([*APP, str(bids), str(tmp_path / "out"), "participant", "-w",
                             str(tmp_path / "w"), *FAST, "--nprocs", str(nprocs)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    # The pool's workers and at least one step started in them.
    while time.monotonic() < deadline and proc.poll() is None:
        started = any((tmp_path / "w").rglob("_node.pklz"))
        if started and len(session_processes(proc.pid)) >= nprocs + 1:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    return proc


def _assert_all_gone(sid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and session_processes(sid):
        time.sleep(0.1)
    left = session_processes(sid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes still running: {left}"


@pytest.mark.parametrize("signals, code, nprocs", [
    ((signal.SIGINT,), 130, 2), ((signal.SIGINT, signal.SIGINT), 130, 2),
    ((signal.SIGTERM,), 143, 2), ((signal.SIGTERM, signal.SIGINT), 143, 2),
    ((signal.SIGINT, signal.SIGINT), 130, 1)])
def test_signals_stop_every_worker_within_10_s(paired, tmp_path, signals, code, nprocs):
    proc = _start_and_wait_for_workers(paired, tmp_path, nprocs)
    started = time.monotonic()
    for sig in signals:
        os.kill(proc.pid, sig)
        time.sleep(0.3)
    try:
        result = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the app did not stop within 10 s")
    err = proc.stderr.read()
    assert result == code, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    _assert_all_gone(proc.pid, within=max(0.0, 10 - (time.monotonic() - started)))


def test_kill_9_of_the_main_process_leaves_no_worker(paired, tmp_path):
    proc = _start_and_wait_for_workers(paired, tmp_path)
    workers = [p for p in session_processes(proc.pid) if p != proc.pid]
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _assert_all_gone(proc.pid, within=10)


def test_workers_do_not_hang_after_torch_ran_in_the_main_process(paired, tmp_path):
    """The participant level called in a process that has already run multi-threaded torch (as
    the group level or a notebook does): pool workers must not inherit its thread pool."""
    script = ("import sys, torch; torch.set_num_threads(2); "
              "(torch.randn(400, 400) @ torch.randn(400, 400)).sum().item(); "
              "from bids_eeg2fmri.cli.run import main; "
              f"sys.exit(main({[str(paired), str(tmp_path / 'out'), 'participant', '-w', str(tmp_path / 'w'), *FAST, '--nprocs', '2']!r}))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "out").rglob("*desc-preproc_bold.nii.gz"))
