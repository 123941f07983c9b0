"""Shared fixtures: tiny configs and data that the tests make themselves (all offline)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never touch the repository's own MLflow store or the network.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory, monkeypatch):
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")


@pytest.fixture(scope="session")
def repo_params():
    from dcgan.config import load_all

    return load_all(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def tiny_train_cfg(repo_params):
    return dataclasses.replace(
        repo_params["train"], iterations=4, batch_size=8, sample_interval=2, experiment="test"
    )


@pytest.fixture(scope="session")
def tiny_images():
    """32 images in [-1, 1], shaped like prepared data."""
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)


def write_params(path: Path, **overrides: dict) -> Path:
    """Write a params.yaml: the repository's, with ``{block: {key: value}}`` overrides."""
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block, values in overrides.items():
        params[block].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    """Run a command; on failure show its output in the assertion."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def make_repo(dest: Path, overrides: dict) -> tuple[Path, dict[str, str]]:
    """A git repository in ``dest`` with the files git would clone (tracked, and untracked but
    not ignored), params overridden, committed. Returns it and an environment to run DVC in."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    write_params(dest / "params.yaml", **overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    run(["git", "init", "-q", "-b", "main"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-q", "-m", "tiny"], dest, env)
    return dest, env
