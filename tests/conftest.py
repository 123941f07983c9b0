"""Shared fixtures: tiny configs and data that the tests make themselves (all offline)."""

from __future__ import annotations

import dataclasses
import os
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
