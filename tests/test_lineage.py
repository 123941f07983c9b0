"""From a model file to the MLflow runs that produced it, by the file's SHA-256 alone."""

from __future__ import annotations

import hashlib
import os

from dcgan.cli import main
from dcgan.pipeline.lineage import GENERATOR_TAG, ONNX_TAG, runs_for_file
from dcgan.pipeline.tracking import Tracker


def test_runs_for_file_and_the_cli(tmp_path, capsys):
    onnx_file = tmp_path / "generator.onnx"
    onnx_file.write_bytes(b"an onnx model")
    digest = hashlib.sha256(b"an onnx model").hexdigest()
    first = Tracker.start("lineage")
    first.set_tags({ONNX_TAG: digest})
    second = Tracker.start("other experiment")
    second.set_tags({ONNX_TAG: digest, GENERATOR_TAG: "0" * 64})
    Tracker.start("lineage").set_tags({ONNX_TAG: "f" * 64})  # another file's run

    found = [r.info.run_id for r in runs_for_file(onnx_file)]
    assert found == [second.run_id, first.run_id]  # newest first, across experiments

    assert main(["runs", str(onnx_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The file's environment (none: these bytes are no ONNX model), then each run and its own.
    assert lines[0] == f"{onnx_file}: exported in not recorded"
    assert [line.split()[0] for line in lines[1::2]] == found
    assert f"runs:/{first.run_id}/generator" in lines[3]
    assert lines[2::2] == ["  trained in not recorded"] * 2


def test_a_file_no_run_produced(tmp_path, capsys):
    (tmp_path / "g.onnx").write_bytes(b"unknown")
    assert main(["runs", str(tmp_path / "g.onnx")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no MLflow run at" in err[0]
    assert os.environ["MLFLOW_TRACKING_URI"] in err[0]
    assert main(["runs", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx not found" in capsys.readouterr().err


def test_mlflow_uris_leaves_mlflow_as_it_found_it(tmp_path, monkeypatch):
    """Export and the registry set MLflow's process-wide URIs for one call; afterwards the
    registry must follow the tracking URI again (a pinned one sent later runs elsewhere)."""
    import mlflow

    from dcgan.pipeline.store import mlflow_uris

    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = [mlflow.get_tracking_uri(), mlflow.get_registry_uri()]
    before_env = [os.environ.get(name) for name in names]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with mlflow_uris(other):
        assert mlflow.get_tracking_uri() == other and mlflow.get_registry_uri() == other
    assert [mlflow.get_tracking_uri(), mlflow.get_registry_uri()] == before
    assert [os.environ.get(name) for name in names] == before_env
    third = f"sqlite:///{tmp_path / 'third.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", third)
    assert mlflow.get_registry_uri() == third
