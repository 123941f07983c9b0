"""Beyond one machine: queued parallel experiments into one store, a real MLflow server,
a DVC remote, and MirroredStrategy over two logical CPU devices."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from .conftest import experiment_names, mlflow_server, run, run_python, stage_command
from .repos import copy_built

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(built_tiny, tmp_path_factory):
    # The built copy's run cache is filled: queued copies reuse prepare and the classifier.
    repo, env = copy_built(built_tiny, tmp_path_factory.mktemp("scale") / "repo")
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "baseline"], repo, env)
    return repo, env


def queue_finished(repo: Path, env: dict, names: list[str], timeout: float = 900) -> str:
    """`dvc queue status` once the queue has nothing queued or running. Watched through the
    experiments' refs, a git call of milliseconds, and asked of DVC only when they are all in
    or every 15 s (for a failure): each `dvc queue status` takes a second of a core that the
    queued runs need."""
    deadline = time.monotonic() + timeout
    ask_at, status = time.monotonic() + 15, ""
    while True:
        if set(names) <= set(experiment_names(repo, env)) or time.monotonic() >= ask_at:
            status = run(["dvc", "queue", "status"], repo, env)
            if "Queued" not in status and "Running" not in status:
                return status
            ask_at = time.monotonic() + 15
        if time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def test_queued_experiments_run_in_parallel_into_one_store(repo):
    repo, env = repo
    for seed in (1, 2):
        run(
            ["dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}", "-n", f"seed{seed}"],
            repo,
            env,
        )
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    status = queue_finished(repo, env, ["seed1", "seed2"])
    logs = "".join(run(["dvc", "queue", "logs", f"seed{s}"], repo, env) for s in (1, 2))
    assert "database is locked" not in logs
    assert status.count("Success") >= 2, status + logs

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env))
    names = {
        exp.get("name")
        for rev in shown
        for exp in (rev.get("experiments") or [])
        for exp in [exp] + [r for r in exp.get("revs", [])]
    }
    text = json.dumps(shown)
    assert {"seed1", "seed2"} <= names or ("seed1" in text and "seed2" in text)
    assert "mnist_score" in text

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dcgan")
    runs = client.search_runs([exp.experiment_id])
    by_name = {r.data.tags.get("dvc_exp_name"): r for r in runs}
    assert {"seed1", "seed2"} <= set(by_name)  # both landed in the workspace's store
    for name in ("seed1", "seed2"):
        r = by_name[name]
        assert r.info.status == "FINISHED" and r.info.run_name == name  # named after the exp
        assert r.data.params["train.seed"] == name[-1]
        assert "mnist_score" in r.data.metrics  # evaluate logged into the same run
        assert [m.step for m in client.get_metric_history(r.info.run_id, "d_loss")] == [3, 6]
    assert not list((repo / ".dvc/tmp/exps").glob("**/mlflow.db"))  # nothing left in a copy


@pytest.fixture
def tracking_server(tmp_path):
    """A real `mlflow server` over SQLite (over PostgreSQL with artifacts in S3: test_team)."""
    with mlflow_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}") as uri:
        yield uri


def test_training_against_a_tracking_server(repo, tracking_server, tmp_path):
    repo, env = repo
    mlflow_server = tracking_server
    work = tmp_path / "ws"
    shutil.copytree(
        repo, work, ignore=shutil.ignore_patterns("mlflow.db*", "mlruns", ".dvc", "node_modules")
    )
    env = {**env, "MLFLOW_TRACKING_URI": mlflow_server}
    # dvc.yaml's commands, run by hand in the copy (relative paths, as DVC runs them).
    for stage in ("train", "export"):
        run(stage_command(stage, Path(".")), work, env)

    import mlflow
    from mlflow.tracking import MlflowClient

    from dcgan.tracking.lineage import runs_for_file

    client = MlflowClient(tracking_uri=mlflow_server)
    (found,) = runs_for_file(work / "models/generator.onnx", mlflow_server)
    run_id = found.info.run_id
    got = client.get_run(run_id)
    assert got.data.params["train.iterations"] == "6"
    assert [m.step for m in client.get_metric_history(run_id, "g_loss")] == [3, 6]
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.onnx.load_model(f"runs:/{run_id}/generator")
    assert model.graph.output[0].name == "image"


def test_dvc_remote_push_wipe_pull_is_byte_identical(repo, tmp_path):
    repo, env = repo
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "-f", "storage", str(remote)], repo, env)
    run(["dvc", "push", "-r", "storage"], repo, env)
    models = ["models/generator.onnx", "models/generator.keras", "models/mnist_classifier.keras"]
    before = {m: (repo / m).read_bytes() for m in models}
    shutil.rmtree(repo / ".dvc/cache")
    for m in models:
        (repo / m).unlink()
    run(["dvc", "pull", "-r", "storage"], repo, env)
    assert {m: (repo / m).read_bytes() for m in models} == before
    assert "up to date" in run(["dvc", "status"], repo, env)


MIRRORED = """
import dataclasses, json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dcgan.config import load_all
from dcgan.gan.training import GAN
from dcgan.gan.loop import train_loop

base = dataclasses.replace(load_all(sys.argv[1])["train"], iterations=3, batch_size=16,
                           sample_interval=1)
mirrored = dataclasses.replace(base, strategy="mirrored", devices="CPU:0,CPU:1")
x = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
out = {}
for name, cfg in (("default", base), ("mirrored", mirrored)):
    gan = GAN(cfg, x)
    g0 = [v.numpy().copy() for v in gan.generator.trainable_weights]
    d0 = [v.numpy().copy() for v in gan.discriminator.trainable_weights]
    rows = train_loop(gan, progress=False).rows
    out[name] = {
        "replicas": gan.replicas,
        "rows": rows,
        "g_changed": all(not np.array_equal(a, v.numpy())
                         for a, v in zip(g0, gan.generator.trainable_weights)),
        "d_changed": all(not np.array_equal(a, v.numpy())
                         for a, v in zip(d0, gan.discriminator.trainable_weights)),
    }
print(json.dumps(out))
"""


def test_mirrored_strategy_over_two_logical_cpus_matches_one_device():
    from .conftest import ROOT

    out = json.loads(run_python(MIRRORED, str(ROOT / "params.yaml")).strip().splitlines()[-1])
    one, two = out["default"], out["mirrored"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    assert two["g_changed"] and two["d_changed"]
    for a, b in zip(one["rows"], two["rows"], strict=True):
        for key in ("d_loss", "g_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-2), (key, a, b)  # same loss scale
        assert b["d_accuracy"] == a["d_accuracy"]
    # The first iteration starts from identical weights and the same global batch: with
    # synchronised BatchNorm it differs from one device only by summation order.
    assert two["rows"][0]["d_loss"] == pytest.approx(one["rows"][0]["d_loss"], rel=1e-4)


def test_batch_size_must_split_over_devices(tiny_train_cfg, tiny_images, monkeypatch):
    import dataclasses

    from dcgan.errors import DcganError
    from dcgan.gan import training

    class TwoReplicas:
        num_replicas_in_sync = 2

    monkeypatch.setattr(training, "make_strategy", lambda name, devices: TwoReplicas())
    cfg = dataclasses.replace(tiny_train_cfg, batch_size=7, strategy="mirrored")
    with pytest.raises(DcganError, match="batch_size=7 does not split evenly over 2 devices"):
        training.GAN(cfg, tiny_images)
