"""The software environment on the record: which lock installed it, and the versions that
decide what a model computes.

``./run`` installs exactly ``uv.lock``; a run records the lock's SHA-256 and the installed
versions of the key packages (read from their metadata: nothing here imports TensorFlow), so
two models made in different environments can be told apart from their files alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import tomllib
from importlib import metadata
from pathlib import Path

# The packages whose versions change what the pipeline computes or writes.
KEY_PACKAGES = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy")
LOCK_KEY = "uv_lock_sha256"
# MLflow tags and ONNX metadata keys: env.uv_lock_sha256, env.python, env.tensorflow, ...
PREFIX = "env."


log = logging.getLogger(__name__)


def installed_version(package: str) -> str:
    """The installed distribution's version, or ``not installed``."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(lock: str | os.PathLike[str] | None) -> dict[str, str]:
    """``{uv_lock_sha256, python, tensorflow, keras, ...}``: the lock file's SHA-256 (``none``
    without one) and the versions this process runs with."""
    digest = hashlib.sha256(Path(lock).read_bytes()).hexdigest() if lock is not None else "none"
    return {
        LOCK_KEY: digest,
        "python": platform.python_version(),
        **{name: installed_version(name) for name in KEY_PACKAGES},
    }


def as_tags(environment: dict[str, str]) -> dict[str, str]:
    """The same, keyed ``env.<name>`` (MLflow tags, ONNX metadata)."""
    return {f"{PREFIX}{k}": v for k, v in environment.items()}


def from_tags(tags: dict[str, str]) -> dict[str, str]:
    """The environment recorded in ``env.*`` tags or metadata (empty if none)."""
    return {k[len(PREFIX) :]: v for k, v in tags.items() if k.startswith(PREFIX)}


def summary(environment: dict[str, str]) -> str:
    """One line for people: ``uv.lock 3f2a9c1b7d4e, python 3.11.7, tensorflow 2.21.0, ...``."""
    if not environment:
        return "not recorded"
    lock = environment.get(LOCK_KEY, "none")
    # describe()'s order, whatever order the record kept (ONNX metadata is unordered).
    order = ["python", *KEY_PACKAGES]
    names = [k for k in order if k in environment]
    names += sorted(k for k in environment if k not in order and k != LOCK_KEY)
    return ", ".join([f"uv.lock {lock[:12]}", *(f"{k} {environment[k]}" for k in names)])


def locked_versions(lock: str | os.PathLike[str]) -> dict[str, str]:
    """Package name -> version as ``uv.lock`` pins it (the first entry of a package that the
    lock forks by platform or Python)."""
    with open(lock, "rb") as f:
        packages = tomllib.load(f).get("package", [])
    versions: dict[str, str] = {}
    for package in packages:
        if "version" in package:
            versions.setdefault(package["name"], package["version"])
    return versions


def drift(
    lock: str | os.PathLike[str], described: dict[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """Key packages whose installed version is not the lock's: ``{name: (installed, locked)}``.
    ``described``: this process's :func:`describe`, if already made (its versions are used)."""
    locked = locked_versions(lock)
    installed = described or {name: installed_version(name) for name in KEY_PACKAGES}
    return {
        name: (installed[name], locked.get(name, "not locked"))
        for name in KEY_PACKAGES
        if installed[name] != locked.get(name)
    }


def warn_on_drift(lock: str | os.PathLike[str] | None, environment: dict[str, str]) -> None:
    """The record shows the installed versions either way; say when they are not the lock's."""
    if lock is None:
        return
    for name, (installed, locked) in drift(lock, environment).items():
        log.warning(
            "%s %s is installed but %s pins %s; ./run installs exactly the lock",
            name,
            installed,
            lock,
            locked,
        )
