"""MLflow as its users know it: source tags, the data set, readable run names, a registered
model with a `champion`, served over HTTP offline."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from dcgan.config import load_all
from dcgan.contract import draw_noise
from dcgan.pipeline.paths import ClassifierPaths, ExportPaths, PreparePaths
from dcgan.tracking.serving import MAX_BATCH
from dcgan.tracking.store import mlflow_uris

from .conftest import (
    ROOT,
    free_port,
    paths_of,
    stage_paths,
    stop_group,
    wait_until_serving,
    write_params,
)

pytestmark = pytest.mark.slow  # each test runs the stages on tiny data

MODEL = "dcgan-generator"


def pipeline(root, seed: int, store: str, monkeypatch, exp_name: str | None = None) -> dict:
    """prepare (once), train, classifier (once), export and evaluate on tiny data."""
    from dcgan.pipeline import classifier, export, prepare, train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    if exp_name:
        monkeypatch.setenv("DVC_EXP_NAME", exp_name)
    else:
        monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    cfg = load_all(ROOT / "params.yaml")
    data, work = root / "data", root / f"seed{seed}"
    if not data.exists():
        prepare.run(dataclasses.replace(cfg["prepare"], source="sample"), PreparePaths(data))
        classifier.run(
            dataclasses.replace(cfg["classifier"], epochs=1),
            ClassifierPaths(
                data=data, model=root / "classifier.keras", report=root / "classifier.json"
            ),
        )
    small = dataclasses.replace(
        cfg["train"], iterations=2, batch_size=8, sample_interval=1, eval_interval=0, seed=seed
    )
    train.run(small, paths_of("train", work, data=data), progress=False)
    paths = stage_paths("export", work)
    export.run(
        cfg["export"],
        ExportPaths(generator=paths["generator"], training=paths["training"], out=paths["out"]),
    )
    return evaluate_at(work, root, cfg["evaluate"])


def evaluate_at(work: Path, root: Path, cfg):
    """The evaluate stage on the ONNX file under ``work``, scored with ``root``'s classifier."""
    from dcgan.pipeline import evaluate

    paths = stage_paths("evaluate", work)
    return evaluate.run(
        dataclasses.replace(cfg, num_samples=300),
        paths_of(
            "evaluate",
            work,
            onnx=paths["onnx"],
            generator=paths["generator"],
            classifier=root / "classifier.keras",
            data=root / "data",
        ),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two trainings with different seeds into one store (the second as a DVC experiment)."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch = pytest.MonkeyPatch()
    try:
        metrics = [
            pipeline(root, 0, uri, monkeypatch),
            pipeline(root, 1, uri, monkeypatch, exp_name="seed-one"),
        ]
    finally:
        monkeypatch.undo()
    return root, uri, metrics


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_runs_carry_source_tags_data_set_and_names(store):
    root, uri, _ = store
    c = client(uri)
    experiment = c.get_experiment_by_name("dcgan")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = c.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.run_name for r in runs] == ["sample-2it-seed0", "seed-one"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    meta = json.loads((root / "data/meta.json").read_text())
    for run in runs:
        tags = run.data.tags
        assert tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.source.name"] == "stages/train.py"
        assert tags["mlflow.source.git.commit"] == head
        (dataset_input,) = run.inputs.dataset_inputs
        dataset = dataset_input.dataset
        assert dataset.name == "sample" and dataset.digest == meta["sha256"][:36]
        assert json.loads(dataset.profile)["sha256"] == meta["sha256"]
        assert json.loads(dataset.source)["uri"] == (root / "data").resolve().as_uri()
        assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert runs[1].data.tags["dvc_exp_name"] == "seed-one"


def test_every_evaluated_generator_is_a_version_with_its_metrics(store):
    root, uri, metrics = store
    versions = sorted(
        client(uri).search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version)
    )
    assert [str(v.version) for v in versions] == ["1", "2"]
    for version, m, seed in zip(versions, metrics, (0, 1), strict=True):
        assert float(version.tags["fcd"]) == pytest.approx(m["fcd"])
        assert version.tags["data_source"] == "sample"
        onnx_file = root / f"seed{seed}/models/generator.onnx"
        from dcgan.files import sha256_file

        assert version.tags["onnx_sha256"] == sha256_file(onnx_file)
        assert version.tags["classifier_sha256"] == sha256_file(root / "classifier.keras")


def test_evaluating_the_same_bytes_again_reuses_their_version(store, monkeypatch):
    """`dvc repro -f evaluate` registered versions 3, 4, 5 of identical ONNX bytes."""

    root, uri, metrics = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    work, cfg = root / "seed0", load_all(ROOT / "params.yaml")["evaluate"]
    again = evaluate_at(work, root, cfg)
    assert again["fcd"] == pytest.approx(metrics[0]["fcd"])
    versions = client(uri).search_model_versions(f"name = '{MODEL}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]


def test_promote_picks_the_lowest_fcd_among_comparable_versions(store, capsys):
    from dcgan.cli import main

    _, uri, _ = store
    c = client(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # the autouse fixture restores it
    c.set_model_version_tag(MODEL, "1", "fcd", "12.5")
    c.set_model_version_tag(MODEL, "2", "fcd", "30.0")
    assert main(["promote"]) == 0
    assert str(c.get_model_version_by_alias(MODEL, "champion").version) == "1"
    said = capsys.readouterr().out
    assert "champion: version (none) -> version 1" in said and "lowest FCD (12.500) of 2" in said

    c.set_model_version_tag(MODEL, "2", "fcd", "3.0")
    assert main(["promote"]) == 0
    assert str(c.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert "champion: version 1 -> version 2" in capsys.readouterr().out

    # Measured with another classifier: not comparable, so a lower FCD does not win.
    c.set_model_version_tag(MODEL, "1", "classifier_sha256", "0" * 64)
    c.set_model_version_tag(MODEL, "1", "fcd", "0.1")
    assert main(["promote"]) == 0
    out = capsys.readouterr().out
    assert "champion stays at version 2" in out and "1 on other data or classifiers" in out
    c.set_model_version_tag(
        MODEL, "1", "classifier_sha256", c.get_model_version(MODEL, "2").tags["classifier_sha256"]
    )
    c.set_model_version_tag(MODEL, "1", "fcd", "12.5")


def test_promote_without_versions_is_one_line(tmp_path, capsys):
    from dcgan.cli import main

    assert main(["promote", "--name", "nothing-here"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1 and "no evaluated version of registered model 'nothing-here'" in errors[0]
    )


@pytest.mark.parametrize("command", [["promote", "--name", "m"], ["runs", "FILE"]])
def test_promote_and_runs_give_up_within_the_retry_budget(tmp_path, monkeypatch, capsys, command):
    """A store that does not answer costs the retry budget, not MLflow's own minutes of
    retries: one line naming the store and the budget."""
    import time

    from dcgan.cli import main
    from dcgan.tracking.retry import RETRY_ENV

    from .conftest import free_port

    (tmp_path / "g.onnx").write_bytes(b"a generator")
    command = [str(tmp_path / "g.onnx") if a == "FILE" else a for a in command]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv(RETRY_ENV, "2")
    start = time.monotonic()
    assert main(command) != 0
    assert time.monotonic() - start < 30
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "did not answer for 2 s" in errors[0], errors


def test_promote_without_flags_uses_the_registered_model_param(tmp_path, capsys):
    from dcgan.cli import main

    params = write_params(tmp_path / "params.yaml", evaluate={"registered_model": "my-digits"})
    assert main(["promote", "--params", str(params)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "registered model 'my-digits'" in errors[0]


def test_champion_loads_as_onnx_and_pyfunc_and_is_served(store, tmp_path):
    import mlflow
    import onnxruntime as ort

    root, uri, _ = store
    c = client(uri)
    c.set_registered_model_alias(MODEL, "champion", "2")
    with mlflow_uris(uri):  # mlflow.set_tracking_uri would outlive the test
        model = mlflow.onnx.load_model(f"models:/{MODEL}@champion")
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    assert model.graph.input[0].name == "z"
    z = draw_noise(3, 100, seed=7)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["image"], {"z": z})
    # The champion (version 2) computes what the second training's generator.onnx computes.
    local = ort.InferenceSession(
        str(root / "seed1/models/generator.onnx"), providers=["CPUExecutionProvider"]
    )
    assert np.array_equal(local.run(["image"], {"z": z})[0], expected)
    assert {p.key: p.value for p in model.metadata_props}["params"] == (
        local.get_modelmeta().custom_metadata_map["params"]
    )
    assert np.abs(pyfunc.predict(z)["image"] - expected).max() <= 1e-5

    port = free_port()
    # `mlflow models serve` starts `uvicorn` from PATH: the environment's bin/ must be on it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "wb"),  # noqa: SIM115
        cwd=tmp_path,
        start_new_session=True,  # it starts uvicorn: stop the whole group
    )
    try:
        url = f"http://127.0.0.1:{port}"
        log_path = tmp_path / "serve.log"
        wait_until_serving(f"{url}/ping", server, log_path, "mlflow models serve", timeout=180)
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"inputs": z.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            images = np.asarray(json.loads(reply.read())["predictions"]["image"], np.float32)
        # Refused at the door, before any computing: too many rows, and NaN noise.
        big = np.zeros((MAX_BATCH + 1, 100), np.float32)
        nan = z.copy()
        nan[0, 0] = np.nan
        refusals = [refused(f"{url}/invocations", body) for body in (big, nan)]
    finally:
        stop_group(server)
    assert images.shape == (3, 28, 28, 1)
    assert np.abs(images - expected).max() <= 1e-5
    assert [code for code, _ in refusals] == [400, 400]
    assert f"this server takes at most {MAX_BATCH}" in refusals[0][1]
    assert "not finite numbers" in refusals[1][1]


def refused(url: str, z: np.ndarray) -> tuple[int, str]:
    """POST ``z`` (NaN written as JSON's NaN) and return the error status and message."""
    import urllib.error

    body = json.dumps({"inputs": z.tolist()}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["message"]
