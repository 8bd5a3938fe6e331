"""The container image: Dockerfile lint and rules, and a real daemonless build-and-run.

The build-and-run test (`scripts/container-test.sh`) needs Debian's buildah and podman and root;
it skips without them, except in CI (``CI=true``), where a skip would hide a broken image.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SCRIPT = REPO / "scripts" / "container-test.sh"

# Files whose presence in an image would leak credentials or pin a host's TLS trust.
SECRET_SOURCE = re.compile(
    r"(\.crt|\.pem|\.key|\.p12|\.pfx|ca-certificates|certs?/|pip\.conf|\.pypirc|\.netrc|\.npmrc"
    r"|\.env$|id_rsa|id_ed25519|\.ssh|\.docker/config|secret|token|credential)", re.IGNORECASE)
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PIP_CERT|REQUESTS_CA_BUNDLE"
                         r"|SSL_CERT_FILE|CURL_CA_BUNDLE|PIP_CLIENT_CERT)", re.IGNORECASE)
REQUIRED_LABELS = ("title", "description", "version", "created", "revision", "source", "licenses")


# --------------------------------------------------------------------------------- parsing
def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and (not line or line.startswith("#")):  # allowed inside a continuation
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage, each starting with its FROM."""
    out: list[list[tuple[str, str]]] = []
    for ins in instructions:
        if ins[0] == "FROM":
            out.append([])
        assert out, f"{ins[0]} before the first FROM"
        out[-1].append(ins)
    return out


def key_values(args: str) -> dict[str, str]:
    """``KEY=value`` pairs of an ENV/LABEL/ARG line (values may be double-quoted)."""
    pairs = re.findall(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|\S*)', args)
    return {k: v[1:-1] if v.startswith('"') else v for k, v in pairs}


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), "no Dockerfile at the repository root"
    return parse_dockerfile(DOCKERFILE.read_text())


def test_parser_sees_continuations_and_comments():
    ins = parse_dockerfile("# c\nFROM a AS b\nRUN x \\\n  # inner\n\n  && y\nUSER 1000\n")
    assert ins == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1000")]


# ---------------------------------------------------------------------------------- hadolint
def test_hadolint_passes():
    """Every hadolint finding fails, info level included (its default failure threshold)."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(exe).exists(), "hadolint not found: install the test extra (pip install '.[test]')"
    proc = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


# ------------------------------------------------------------------------- Dockerfile rules
# Each rule returns its problems (empty: fine) so that it can be run on bad Dockerfiles too.
def base_problems(ins: list[tuple[str, str]]) -> list[str]:
    """The image is debian:bookworm-slim (CI stands it in without a registry); other stages may
    only be ``scratch`` (e.g. an empty default for a build context)."""
    problems = []
    all_stages = stages(ins)
    for i, stage in enumerate(all_stages):
        image = [b for b in stage[0][1].split() if not b.startswith("--")][0]
        allowed = {"debian:bookworm-slim"}
        if i < len(all_stages) - 1:
            allowed.add("scratch")
        if image not in allowed:
            problems.append(f"FROM {image}: the image builds on debian:bookworm-slim")
    return problems


def user_problems(ins: list[tuple[str, str]]) -> list[str]:
    users = [args for kw, args in stages(ins)[-1] if kw == "USER"]
    if not users:
        return ["the final stage sets no USER, so the image runs as root"]
    user = users[-1].split(":")[0]
    if user in ("root", "0"):
        return [f"the last USER is {users[-1]}"]
    # Numeric: `runAsNonRoot` and similar checks can verify it without reading /etc/passwd.
    return [] if user.isdigit() else [f"USER {users[-1]} is not numeric"]


def entrypoint_problems(ins: list[tuple[str, str]]) -> list[str]:
    entrypoints = [args for kw, args in stages(ins)[-1] if kw == "ENTRYPOINT"]
    if not entrypoints:
        return ["no ENTRYPOINT"]
    # Exec form: arguments after the image name reach the app, and so do signals.
    try:
        value = json.loads(entrypoints[-1])
    except json.JSONDecodeError:
        return [f"ENTRYPOINT {entrypoints[-1]} is not the exec (JSON) form"]
    return [] if value == ["bids-eeg2fmri"] else [f"ENTRYPOINT {value} is not the BIDS-App"]


def secret_problems(ins: list[tuple[str, str]]) -> list[str]:
    problems = []
    for kw, args in ins:
        if kw in ("COPY", "ADD"):
            for src in [p for p in args.split() if not p.startswith("--")][:-1]:
                if SECRET_SOURCE.search(src):
                    problems.append(f"{kw} {args}: copies a secret or CA file into a layer")
        if kw in ("ENV", "ARG"):
            for name in key_values(args) or {args.split("=")[0]: ""}:
                if SECRET_NAME.search(name):
                    problems.append(f"{kw} {name}: secrets and CA paths stay out of the image")
        if kw == "RUN":
            # Build-time credentials come in as secret mounts only (they never enter a layer);
            # a bind mount of a CA/secret file, or copying the secret somewhere, would bake it in.
            for mount in re.findall(r"--mount=(\S+)", args):
                opts = dict(o.split("=", 1) for o in mount.split(",") if "=" in o)
                if opts.get("type", "bind") != "secret" and SECRET_SOURCE.search(
                        opts.get("source", "") + opts.get("target", "")):
                    problems.append(f"RUN --mount={mount}: use a secret mount for CA/secret files")
            if re.search(r"\b(cp|mv|cat|tee|install)\b[^&;|]*/run/(host-ca|secrets)", args):
                problems.append("RUN copies a build secret into the image")
    return problems


def label_problems(ins: list[tuple[str, str]]) -> list[str]:
    labels: dict[str, str] = {}
    for kw, args in stages(ins)[-1]:
        if kw == "LABEL":
            labels.update(key_values(args))
    return [f"OCI label org.opencontainers.image.{k} missing" for k in REQUIRED_LABELS
            if not labels.get(f"org.opencontainers.image.{k}")]


def env_problems(ins: list[tuple[str, str]]) -> list[str]:
    """Under --read-only only /tmp (a tmpfs) is writable; Apptainer binds the host's /tmp there."""
    env: dict[str, str] = {}
    for kw, args in stages(ins)[-1]:
        if kw == "ENV":
            env.update(key_values(args))
    problems = [f"{name}={env.get(name)!r} is not under /tmp"
                for name in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR",
                             "DENO_DIR", "BIDS_EEG2FMRI_CACHE")
                if not env.get(name, "").startswith("/tmp")]
    if env.get("BIDS_EEG2FMRI_CONTAINER") != "docker":
        problems.append("BIDS_EEG2FMRI_CONTAINER=docker is not set (GeneratedBy.Container)")
    return problems


RULES = [base_problems, user_problems, entrypoint_problems, secret_problems, label_problems,
         env_problems]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_dockerfile_rule(rule, dockerfile):
    assert rule(dockerfile) == []


GOOD = parse_dockerfile(DOCKERFILE.read_text()) if DOCKERFILE.is_file() else []


def _with(replace: dict[str, str | None] | None = None,
          extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The real Dockerfile with final-stage instructions replaced (None: dropped) or added."""
    replace = replace or {}
    out = []
    for kw, args in GOOD:
        if kw in replace and (kw, args) in stages(GOOD)[-1]:
            if replace[kw] is not None:
                out.append((kw, replace[kw]))
        else:
            out.append((kw, args))
    return out + list(extra)


@pytest.mark.parametrize(("rule", "bad"), [
    (base_problems, [("FROM", "python:3.11-slim")]),
    (base_problems, [("FROM", "debian:bookworm-slim AS build"), ("FROM", "scratch")]),
    (secret_problems, _with(extra=[("RUN", "--mount=type=bind,source=ca.crt,target=/c true")])),
    (secret_problems, _with(extra=[("RUN", "--mount=type=secret,id=ca,target=/run/host-ca.crt "
                                           "cp /run/host-ca.crt /etc/ssl/certs/")])),
    (user_problems, _with({"USER": None})),
    (user_problems, _with({"USER": "root"})),
    (user_problems, _with({"USER": "0:0"})),
    (user_problems, _with({"USER": "bids"})),
    (entrypoint_problems, _with({"ENTRYPOINT": "bids-eeg2fmri"})),
    (entrypoint_problems, _with({"ENTRYPOINT": '["python"]'})),
    (secret_problems, _with(extra=[("COPY", "/etc/ssl/certs/ca-certificates.crt /etc/ssl/")])),
    (secret_problems, _with(extra=[("COPY", "--chown=1000 pip.conf /etc/pip.conf")])),
    (secret_problems, _with(extra=[("ENV", "PIP_CERT=/run/host-ca.crt")])),
    (secret_problems, _with(extra=[("ARG", "GITHUB_TOKEN")])),
    (label_problems, _with({"LABEL": 'org.opencontainers.image.title="x"'})),
    (env_problems, _with({"ENV": "PATH=/opt/venv/bin:$PATH HOME=/home/bids"})),
], ids=lambda v: v.__name__ if callable(v) else "")
def test_dockerfile_rule_catches(rule, bad):
    assert GOOD, "no Dockerfile"
    assert rule(bad), f"{rule.__name__} accepted a bad Dockerfile"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        pat = pat[3:] if pat.startswith("**/") else pat
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pattern.lstrip("!").startswith("**/")
                                                    and fnmatch.fnmatchcase(parts[i - 1], pat)):
                ignored = not negate
                break
    return ignored


def test_dockerignore_keeps_context_small_and_sources_in(dockerfile):
    assert DOCKERIGNORE.is_file(), "no .dockerignore: the whole .venv and .git would be sent"
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines()
                if p.strip() and not p.strip().startswith("#")]
    for heavy in (".venv/bin/python", ".git/config", "demo_output/x", ".env", "tests/test_cli.py"):
        assert _ignored(heavy, patterns), f"{heavy} would be sent to the build"
    # Every file the Dockerfile copies from the context exists and is not ignored.
    for kw, args in dockerfile:
        if kw == "COPY" and "--from=" not in args:
            for src in [p for p in args.split() if not p.startswith("--")][:-1]:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
                assert not _ignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    assert not _ignored("bids_eeg2fmri/cli/run.py", patterns)
    assert _ignored("bids_eeg2fmri/__pycache__/x.pyc", patterns)


def test_script_is_strict_and_cleans_up():
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert re.search(r"^trap cleanup EXIT", text, re.MULTILINE)
    assert "/etc/containers" not in text, "the script must keep its config out of /etc"
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------ build and run
def _container_tools_missing() -> str | None:
    missing = [t for t in ("buildah", "podman") if shutil.which(t) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (Debian: apt-get install buildah podman "
                "debootstrap runc)")
    if os.geteuid() != 0:
        return "needs root (debootstrap and rootful podman)"
    return None


@pytest.mark.container
def test_image_builds_and_runs_read_only():
    """Build the real image daemonless, then run --version and the participant level on simulated
    data with a read-only root and a read-only data mount (see scripts/container-test.sh)."""
    reason = _container_tools_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the container test, but {reason}")
        pytest.skip(reason)
    env = dict(os.environ, VENV=sys.prefix)
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3600)
    print(proc.stdout[-6000:])  # the timings, shown with -s or -rA
    assert proc.returncode == 0, (f"container-test.sh exited {proc.returncode}\n"
                                  f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
