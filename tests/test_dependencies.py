"""Dependency bounds: the minimum-versions constraints and the lock agree with pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _requirements(include_test: bool) -> list[Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"]]
    if include_test:
        reqs += [Requirement(r) for r in PYPROJECT["optional-dependencies"]["test"]]
    return reqs


def _lower_bound(req: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
    return max(bounds) if bounds else None


def test_constraints_min_pin_every_lower_bound():
    pins = _pins(REPO / "ci" / "constraints-min.txt")
    for req in _requirements(include_test=True):
        name, low = canonicalize_name(req.name), _lower_bound(req)
        if name == "torch" or low is None:
            continue    # torch is pinned by TORCH_SPEC; unbounded ones have nothing to test
        assert name in pins, f"{req.name} missing from ci/constraints-min.txt"
        assert pins[name] in req.specifier, f"{req.name}=={pins[name]} violates {req}"
        # The pin is the lowest release of the allowed range's lower bound (same release segment).
        assert pins[name].release[:len(low.release)] == low.release, (req.name, pins[name], low)


def test_lock_satisfies_pyproject():
    pins = _pins(REPO / "requirements.lock")
    for req in _requirements(include_test=False):
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, f"{req.name} missing from requirements.lock"
        assert pins[name] in req.specifier, f"lock {req.name}=={pins[name]} violates {req}"


def test_runtime_and_test_extra_split():
    runtime = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    test = {canonicalize_name(Requirement(r).name)
            for r in PYPROJECT["optional-dependencies"]["test"]}
    code = "\n".join(p.read_text() for p in (REPO / "bids_eeg2fmri").rglob("*.py"))
    # pybv is what mne.export writes BrainVision with: needed exactly when the package exports it.
    assert ('fmt="brainvision"' in code) == ("pybv" in runtime)
    assert "scikit-learn" in runtime and "tomli-w" in runtime
    assert {"xarray", "h5netcdf"} <= test
