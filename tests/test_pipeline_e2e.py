"""End to end: `dvc repro` for real on a tiny config, in a temporary copy of the repository."""

from __future__ import annotations

import json

import pytest

from .conftest import make_repo, run

pytestmark = pytest.mark.slow

TINY = {
    "prepare": {"source": "sample"},
    "train": {"iterations": 6, "batch_size": 16, "sample_interval": 3},
    "classifier": {"epochs": 1},
    "evaluate": {"num_samples": 200},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo, env = make_repo(tmp_path_factory.mktemp("repo"), TINY)
    run(["dvc", "repro"], repo, env)
    return repo, env


def test_every_output_exists(repo):
    repo, _ = repo
    for name in ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy", "meta.json"):
        assert (repo / "data/prepared" / name).is_file()
    for name in (
        "generator.keras",
        "discriminator.keras",
        "generator.onnx",
        "training.json",
        "mnist_classifier.keras",
    ):
        assert (repo / "models" / name).stat().st_size > 0
    for name in (
        "losses.png",
        "onnx_samples.png",
        "metrics.json",
        "train_metrics.json",
        "samples_by_class.png",
        "classifier.json",
        "class_shares.json",
    ):
        assert (repo / "reports" / name).stat().st_size > 0
    assert sorted(p.name for p in (repo / "reports/samples").iterdir()) == [
        "iter_000003.png",
        "iter_000006.png",
    ]
    history = (repo / "reports/train_history.csv").read_text().splitlines()
    assert history[0] == "iteration,d_loss,d_accuracy,g_loss" and len(history) == 3
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["num_samples"] == 200 and metrics["onnx_max_abs_diff"] <= 1e-5
    assert metrics["mnist_score"] >= 1.0 and metrics["fcd"] > metrics["fcd_real_floor"]
    assert json.loads((repo / "reports/classifier.json").read_text())["test_accuracy"] > 0.5


def test_dvc_metrics_show_and_up_to_date(repo):
    repo, env = repo
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env))
    flat = json.dumps(shown)
    for key in (
        "onnx_max_abs_diff",
        "seconds_per_iteration",
        "fcd",
        "mnist_score",
        "memorisation_ratio",
        "test_accuracy",
    ):
        assert key in flat, key
    status = run(["dvc", "repro"], repo, env)
    assert "Data and pipelines are up to date" in status


def test_mlflow_store_holds_the_run(repo):
    repo, _ = repo
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcgan")
    (run_info,) = client.search_runs([experiment.experiment_id])
    run_id = run_info.info.run_id
    assert json.loads((repo / "models/training.json").read_text())["mlflow"]["run_id"] == run_id
    data = run_info.data
    assert data.params["train.iterations"] == "6" and data.params["export.opset"] == "17"
    assert data.params["prepare.source"] == "sample" and data.tags["data_source"] == "sample"
    assert len(data.tags["git_commit"]) == 40
    assert [m.step for m in client.get_metric_history(run_id, "d_loss")] == [3, 6]
    assert data.metrics["onnx_max_abs_diff"] <= 1e-5
    assert "fcd" in data.metrics and "class_share_7" in data.metrics
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"samples", "losses.png", "onnx_samples.png", "samples_by_class.png"} <= artifacts
    mlflow.set_tracking_uri(uri)
    model = mlflow.onnx.load_model(f"runs:/{run_id}/generator")
    assert model.graph.input[0].name == "z"
    # Artifacts live next to the store, not in whatever folder a stage ran from.
    assert (repo / "mlruns").is_dir()


def test_dvc_exp_run_and_show(repo):
    repo, env = repo
    run(["dvc", "exp", "run", "-S", "train.iterations=3", "-n", "short"], repo, env)
    shown = run(["dvc", "exp", "show", "--json"], repo, env)
    assert "short" in shown and "onnx_max_abs_diff" in shown and "d_loss" in shown
    assert "mnist_score" in shown
