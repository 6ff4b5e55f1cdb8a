"""Reproducible installs: pyproject pins each runtime dependency to one minor release, the
lock files hold every package at one exact version with hashes, and this environment runs
exactly what they hold."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import ROOT


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def locked(name: str) -> dict[str, tuple[Version, Requirement]]:
    """Package → (version, requirement with its marker), from a lock file."""
    text = (ROOT / name).read_text()
    entries: dict[str, tuple[Version, Requirement]] = {}
    for block in re.split(r"\n(?=\S)", text):
        first = block.splitlines()[0].rstrip(" \\")
        if not first or first.startswith("#"):
            continue
        req = Requirement(first)
        assert "--hash=sha256:" in block, f"{name}: {req.name} has no hash"
        (spec,) = req.specifier
        assert spec.operator == "==", f"{name}: {first} is not an exact version"
        entries[canonicalize_name(req.name)] = (Version(spec.version), req)
    return entries


def test_every_runtime_dependency_is_held_to_one_minor_release():
    for line in pyproject()["project"]["dependencies"]:
        req = Requirement(line)
        lower = [s for s in req.specifier if s.operator == ">="]
        upper = [s for s in req.specifier if s.operator == "<"]
        assert lower and upper, f"{line}: needs >=X.Y.Z,<X.(Y+1)"
        low, high = Version(lower[0].version), Version(upper[0].version)
        assert (high.major, high.minor) == (low.major, low.minor + 1), line


def test_the_libraries_whose_private_names_we_hook_are_listed_themselves():
    names = {canonicalize_name(Requirement(d).name) for d in pyproject()["project"]["dependencies"]}
    assert {"python-engineio", "python-socketio", "piccolo", "sanic", "redis"} <= names


def test_the_locks_satisfy_pyproject_and_agree_with_each_other():
    runtime, dev = locked("requirements.txt"), locked("requirements-dev.txt")
    project = pyproject()["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    for line in wanted:
        req = Requirement(line)
        key = canonicalize_name(req.name)
        assert key in dev, f"{req.name} is not locked: run `bash scripts/lock.sh`"
        assert req.specifier.contains(dev[key][0], prereleases=True), (
            f"{line} but {dev[key][0]} is locked: run `bash scripts/lock.sh`"
        )
    for name, (version, _) in runtime.items():
        assert dev[name][0] == version, f"{name}: {version} vs {dev[name][0]} in the dev lock"


def test_this_environment_runs_exactly_the_locked_versions():
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    for name, (version, req) in locked("requirements-dev.txt").items():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        installed = Version(metadata.version(name))
        assert installed == version, f"{name} {installed} installed, {version} locked"
