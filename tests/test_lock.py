"""The lock (constraints.txt) that the Makefile's environments install from: every package the
project asks for is pinned to one exact version, torch as the Makefile installs it, and the
environment running this suite through ``make test`` holds exactly the pinned versions."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!+_-]+)$")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt line {number} is not 'name==version': {line!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = match[2]
    return pins


def _requirements() -> list[Requirement]:
    """Every requirement of pyproject.toml: the build backend's, the package's, its extras'."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, extras = pyproject["project"], pyproject["project"]["optional-dependencies"]
    return [Requirement(r) for r in pyproject["build-system"]["requires"]
            + project["dependencies"] + [r for group in extras.values() for r in group]]


def test_every_requirement_is_pinned_to_a_version_its_range_admits():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) has no pin in constraints.txt: " \
                             f"run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req}"


def test_the_installer_and_build_backend_are_pinned_and_torch_as_the_makefile_installs_it():
    pins = _pins()
    assert {"pip", "setuptools"} <= pins.keys()
    torch_line = re.search(r"^TORCH\s*:=\s*torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert torch_line and pins["torch"] == torch_line[1]
    assert "+" not in pins["torch"]  # a local label (+cpu) would refuse a CUDA build's 2.13.0+cu


def test_make_test_runs_on_exactly_the_locked_versions():
    venv = ROOT / ".venv"
    import sys
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("not running in the Makefile's .venv (make test-latest, or a user's env)")
    pins = _pins()
    # metadata.version: the distribution an import finds first (setuptools puts its vendored
    # copies, e.g. an older packaging, on sys.path after the environment's own)
    installed = {}
    for name in pins:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    wrong = {n: (v, pins[n]) for n, v in installed.items() if v.split("+")[0] != pins[n]}
    assert not wrong, f"installed vs locked: {wrong}; rebuild the environment (make clean test)"
