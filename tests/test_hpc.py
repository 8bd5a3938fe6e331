"""The SLURM templates in ``scripts/slurm``: syntax, the participant picked by an array task, and
the container command they build (run against a stand-in ``apptainer`` that records its arguments;
no SLURM or Apptainer is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parents[1] / "scripts" / "slurm"
PARTICIPANT = SLURM / "participant.sbatch"
GROUP = SLURM / "group.sbatch"

# Columns in another order than usual, Windows line ends, a byte-order mark and a blank line: the
# script must still count and pick the participants.
TSV = ("\ufeffage\tparticipant_id\tsex\r\n"
       "31\tsub-01\tF\r\n"
       "27\tsub-02\tM\r\n"
       "\r\n"
       "45\tsub-ctrl03\tF\r\n")

FAKE_APPTAINER = """#!/bin/bash
# Records how it was called and the APPTAINERENV_ variables it was given.
{ printf '%s\\n' "$@"; echo "--env--"; env | grep '^APPTAINERENV_' | sort; } > "$FAKE_LOG"
"""


def _bash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "APPTAINERENV_"))}
    return subprocess.run(["bash", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})


@pytest.mark.parametrize("script", [PARTICIPANT, GROUP], ids=lambda p: p.name)
def test_sbatch_scripts_parse(script):
    proc = _bash("-n", str(script))
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH" in script.read_text()


@pytest.fixture()
def tsv(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_bytes(TSV.encode("utf-8"))
    return path


@pytest.mark.parametrize("task,label", [("1", "01"), ("2", "02"), ("3", "ctrl03")])
def test_array_task_picks_its_participant(tsv, task, label):
    proc = _bash(str(PARTICIPANT), "--print-label", str(tsv), env={"SLURM_ARRAY_TASK_ID": task})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{label}\n"


def test_participant_count_and_bad_tasks(tsv, tmp_path):
    assert _bash(str(PARTICIPANT), "--count", str(tsv)).stdout == "3\n"
    beyond = _bash(str(PARTICIPANT), "--print-label", str(tsv), env={"SLURM_ARRAY_TASK_ID": "4"})
    assert beyond.returncode == 65 and "lists 3" in beyond.stderr and beyond.stdout == ""
    for bad in ("0", "x", ""):
        proc = _bash(str(PARTICIPANT), "--print-label", str(tsv), env={"SLURM_ARRAY_TASK_ID": bad})
        assert proc.returncode == 64, (bad, proc.stderr)
    no_column = tmp_path / "other.tsv"
    no_column.write_text("subject\tage\nsub-01\t3\n")
    proc = _bash(str(PARTICIPANT), "--print-label", str(no_column), env={"SLURM_ARRAY_TASK_ID": "1"})
    assert proc.returncode == 65 and "no participant_id column" in proc.stderr


def _fake_runner(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apptainer"
    fake.write_text(FAKE_APPTAINER)
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "called.txt")}


def _called(tmp_path: Path) -> tuple[list[str], list[str]]:
    args, _, env = (tmp_path / "called.txt").read_text().partition("--env--\n")
    return args.splitlines(), env.splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_participant_task_runs_the_container_for_its_label(tsv, tmp_path):
    bids, out, local = tmp_path / "bids", tmp_path / "out", tmp_path / "node-local"
    bids.mkdir()
    local.mkdir()
    shutil.copy(tsv, bids / "participants.tsv")
    env = {**_fake_runner(tmp_path), "BIDS_DIR": str(bids), "OUT_DIR": str(out),
           "SIF": "/images/app.sif", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "77",
           "SLURM_JOB_ID": "80", "SLURM_CPUS_PER_TASK": "4", "SLURM_MEM_PER_NODE": "16384",
           "SLURM_TMPDIR": str(local), "APP_ARGS": "--skip-bids-validation --registration syn-quick"}
    proc = _bash(str(PARTICIPANT), env=env)
    assert proc.returncode == 0, proc.stderr
    args, app_env = _called(tmp_path)
    sif = args.index("/images/app.sif")
    assert args[:2] == ["run", "--cleanenv"]
    container, app = args[:sif], args[sif + 1:]
    binds = [container[i + 1] for i, a in enumerate(container) if a == "-B"]
    assert f"{bids}:/data:ro" in binds and f"{out}:/out" in binds
    assert f"{local}/bids_eeg2fmri_work/sub-ctrl03:/work" in binds
    assert f"{local}/bids_eeg2fmri_tmp_77_3:/tmp" in binds
    assert container[container.index("--home") + 1] == f"{local}/bids_eeg2fmri_tmp_77_3/home"
    assert app == ["/data", "/out", "participant", "--participant-label", "ctrl03", "-w", "/work",
                   "--nprocs", "4", "--mem-gb", "14", "--skip-bids-validation",
                   "--registration", "syn-quick"]
    assert "APPTAINERENV_OMP_NUM_THREADS=4" in app_env
    # Node-local work and /tmp are removed when the task ends; the output folder was created.
    assert list(local.iterdir()) == [local / "bids_eeg2fmri_work"]
    assert not any((local / "bids_eeg2fmri_work").iterdir())
    assert out.is_dir()

    # A task beyond the table stops before the container starts.
    (tmp_path / "called.txt").unlink()
    proc = _bash(str(PARTICIPANT), env={**env, "SLURM_ARRAY_TASK_ID": "4"})
    assert proc.returncode == 65 and "lists 3" in proc.stderr
    assert not (tmp_path / "called.txt").exists()


def test_group_job_uses_torchrun_with_one_process_per_gpu(tmp_path):
    local, work = tmp_path / "node-local", tmp_path / "scratch"
    local.mkdir()
    env = {**_fake_runner(tmp_path), "BIDS_DIR": str(tmp_path), "OUT_DIR": str(tmp_path / "out"),
           "SIF": "/images/app.sif", "SLURM_JOB_ID": "81", "SLURM_CPUS_PER_TASK": "16",
           "SLURM_GPUS_ON_NODE": "4", "CUDA_VISIBLE_DEVICES": "0,1,2,3", "SLURM_TMPDIR": str(local),
           "WORK_ROOT": str(work), "APP_ARGS": "--models cnn --resume"}
    proc = _bash(str(GROUP), env=env)
    assert proc.returncode == 0, proc.stderr
    args, app_env = _called(tmp_path)
    sif = args.index("/images/app.sif")
    assert args[0] == "exec" and "--nv" in args[:sif] and "--cleanenv" in args[:sif]
    assert f"{work}:/work" in args[:sif]
    assert args[sif + 1:] == ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=4",
                              "--no-python", "bids-eeg2fmri", "/data", "/out", "group", "-w",
                              "/work", "--device", "cuda", "--nprocs", "16", "--models", "cnn",
                              "--resume"]
    assert "APPTAINERENV_OMP_NUM_THREADS=4" in app_env
    assert "APPTAINERENV_CUDA_VISIBLE_DEVICES=0,1,2,3" in app_env
    assert work.is_dir()  # a given work root is kept for --resume

    # One GPU: the image's entry point directly, no torchrun.
    proc = _bash(str(GROUP), env={**env, "SLURM_GPUS_ON_NODE": "1", "CUDA_VISIBLE_DEVICES": "0"})
    assert proc.returncode == 0, proc.stderr
    args, _ = _called(tmp_path)
    sif = args.index("/images/app.sif")
    assert args[0] == "run" and args[sif + 1:sif + 4] == ["/data", "/out", "group"]
    assert "torchrun" not in args
