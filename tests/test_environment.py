"""One environment of record: ./run installs exactly uv.lock, only on the Pythons the lock
supports, and the lock stays in step with pyproject.toml."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from dcgan.machine import environment

from .conftest import ROOT

LOCK = ROOT / "uv.lock"


def test_every_installed_package_the_lock_names_is_at_the_locks_version():
    locked = environment.locked_versions(LOCK)
    installed = {
        dist.metadata["Name"].lower().replace("_", "-"): dist.version
        for dist in metadata.distributions()
    }
    differ = {
        name: (version, locked[name])
        for name, version in installed.items()
        if name in locked and name != "dcgan" and version != locked[name]
    }
    assert differ == {}, f"installed (left) is not uv.lock's (right): {differ}; run ./run test"
    # The packages that decide what a model computes are all locked and installed.
    assert environment.drift(LOCK) == {}
    assert set(environment.KEY_PACKAGES) <= set(installed)


def test_describe_names_the_lock_and_the_versions(tmp_path):
    env = environment.describe(LOCK)
    assert env["uv_lock_sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["tensorflow"] == metadata.version("tensorflow")
    assert list(env)[2:] == list(environment.KEY_PACKAGES)
    other = tmp_path / "uv.lock"
    other.write_bytes(LOCK.read_bytes() + b"\n")
    assert environment.describe(other)["uv_lock_sha256"] != env["uv_lock_sha256"]
    assert environment.describe(None)["uv_lock_sha256"] == "none"
    tags = environment.as_tags(env)
    assert tags["env.keras"] == env["keras"]
    assert environment.from_tags({**tags, "data_source": "mnist"}) == env
    line = environment.summary(env)
    assert line.startswith(f"uv.lock {env['uv_lock_sha256'][:12]}, python ")
    assert f"tensorflow {env['tensorflow']}" in line
    shuffled = dict(sorted(env.items(), reverse=True))  # as an unordered record returns it
    assert environment.summary(shuffled) == line


def test_drift_names_a_package_the_lock_pins_otherwise(tmp_path):
    text = LOCK.read_text()
    version = environment.locked_versions(LOCK)["onnx"]
    marker = f'name = "onnx"\nversion = "{version}"'
    assert marker in text
    edited = tmp_path / "uv.lock"
    edited.write_text(text.replace(marker, 'name = "onnx"\nversion = "0.0.1"'))
    assert environment.drift(edited) == {"onnx": (metadata.version("onnx"), "0.0.1")}


def test_the_lock_check_fails_when_pyproject_moves(tmp_path):
    """The check ./run test makes, made as on a new machine: an empty uv cache and the package
    registries (which CI reaches). `--offline` would need a warm cache to re-resolve the edit,
    and answers "No solution found" instead of "needs to be updated" without one."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed here (./run installs the one uv.lock pins)")
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env["UV_CACHE_DIR"] = str(tmp_path / "empty-uv-cache")
    check = [uv, "lock", "--check"]
    ok = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tqdm>=4.66,<5"', '"tqdm>=4.67,<5"'))
    moved = subprocess.run(
        check, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )
    assert moved.returncode != 0 and "needs to be updated" in moved.stderr, moved.stderr


def _fake_python(folder: Path, version: str) -> Path:
    """An interpreter that answers version checks as Python ``version`` would."""
    major, minor = version.split(".")[:2]
    fake = folder / f"python{version}"
    real = sys.executable
    # Runs the real interpreter with sys.version_info replaced, so `-c` checks see `version`.
    fake.write_text(
        "#!/bin/sh\n"
        f'exec {real} -c "import sys; sys.version_info = ({major}, {minor}, 0); '
        'exec(sys.argv[1])" "$2"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


@pytest.mark.parametrize("version", ["3.10", "3.14"])
def test_run_refuses_an_unsupported_python_in_one_line(tmp_path, version):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("run", "uv.lock", "pyproject.toml"):
        shutil.copy2(ROOT / name, checkout / name)
    fake = _fake_python(tmp_path, version)
    proc = subprocess.run(
        [str(checkout / "run"), "test"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(fake)},
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: PYTHON="), proc.stderr
    assert "3.11-3.13" in lines[0]
    assert not (checkout / ".venv").exists()  # nothing half-made


@pytest.mark.parametrize("flag", ["--help", "-h", "help"])
def test_run_help_prints_the_usage_and_exits_0_before_any_set_up(tmp_path, flag):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy2(ROOT / "run", checkout / "run")  # no lock, no Python picked: help needs none
    proc = subprocess.run([str(checkout / "run"), flag], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: ./run COMMAND")
    for command in ("pipeline", "test", "shell", "stack"):
        assert f"\n  {command} " in proc.stdout
    assert [p.name for p in checkout.iterdir()] == ["run"]


@pytest.mark.parametrize(
    ("args", "first_line"),
    [(["tset"], "error: unknown command 'tset'"), ([], "usage: ./run COMMAND")],
)
def test_run_without_a_known_command_exits_2_with_the_usage_or_one_line(tmp_path, args, first_line):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy2(ROOT / "run", checkout / "run")
    proc = subprocess.run(
        [str(checkout / "run"), *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(first_line)
    if args:
        assert proc.stderr.count("\n") == 1 and "./run --help" in proc.stderr
    assert [p.name for p in checkout.iterdir()] == ["run"]


def test_requires_python_is_what_the_lock_supports():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with open(LOCK, "rb") as f:
        lock = tomllib.load(f)
    assert project["requires-python"] == ">=3.11,<3.14"
    assert lock["requires-python"] == ">=3.11, <3.14"


def test_the_environment_starts_from_bytecode():
    """./run installs with --compile-bytecode: every installed module the stages import has its
    bytecode, so no stage compiles TensorFlow, Keras or MLflow from source, even where
    PYTHONDONTWRITEBYTECODE stops Python from caching what it compiles."""
    import keras
    import mlflow  # noqa: F401
    import onnxruntime  # noqa: F401
    import tf2onnx  # noqa: F401

    site = Path(keras.__file__).parents[1]
    sources = {
        Path(module.__file__)
        for module in list(sys.modules.values())
        if getattr(module, "__file__", None) and module.__file__.endswith(".py")
    }
    installed = [f for f in sources if f.is_relative_to(site)]
    assert len(installed) > 1000  # TensorFlow's and Keras's modules among them
    missing = [f for f in installed if not Path(importlib.util.cache_from_source(f)).exists()]
    assert missing == [], f"{len(missing)} modules without bytecode, e.g. {missing[:3]}"


def _exported(*extras: str) -> str:
    """The requirements `uv sync --frozen` installs for these extras, from uv.lock alone."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (./run installs it)")
    flags = [f for extra in extras for f in ("--extra", extra)]
    done = subprocess.run(
        [uv, "export", "--frozen", "--offline", "--no-hashes", "--no-emit-project", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    return done.stdout


def test_the_gpu_extra_is_locked_for_linux_x86_64_and_the_test_set_never_installs_it():
    test = _exported("test")
    assert "nvidia-" not in test  # ./run test on a CPU-only machine: no CUDA wheels
    gpu = [line for line in _exported("gpu").splitlines() if line.startswith("nvidia-")]
    names = {line.split("==")[0] for line in gpu}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= names
    # Linux x86_64 only: a Mac or an aarch64 box asking for the extra installs no CUDA wheel.
    assert all("platform_machine == 'x86_64'" in r and "sys_platform == 'linux'" in r for r in gpu)
    # The CUDA wheels are tensorflow[and-cuda]'s at the one locked TensorFlow.
    locked = environment.locked_versions(LOCK)
    assert f"tensorflow=={locked['tensorflow']}" in _exported("gpu")
