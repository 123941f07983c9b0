"""End to end: `dvc repro` for real on a tiny config (built once per session by conftest's
``built_tiny``), checked and rerun in this module's copy of it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from dcgan.tracking.lineage import runs_for_file

from .conftest import TINY, run, write_params
from .repos import copy_built

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(built_tiny, tmp_path_factory):
    """One copy of the session's tiny pipeline for this module: its tests run in order on it."""
    return copy_built(built_tiny, tmp_path_factory.mktemp("e2e") / "repo")


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
    # animate: one frame per recorded interval; site: the page, onnxruntime-web and this model.
    from PIL import Image

    with Image.open(repo / "reports/progress.gif") as gif:
        assert gif.n_frames == 2
    built = {p.name for p in (repo / "site").iterdir()}
    assert {"index.html", "app.js", "model.onnx", "model.json", "training.gif"} <= built
    assert {"ort.wasm.min.js", "ort-wasm-simd-threaded.wasm"} <= built
    onnx_bytes = (repo / "models/generator.onnx").read_bytes()
    assert (repo / "site/model.onnx").read_bytes() == onnx_bytes
    card = json.loads((repo / "site/model.json").read_text())
    assert card["metrics"]["fcd"] == metrics["fcd"] and card["params"]["train.iterations"] == 6


def test_dvc_metrics_show_and_up_to_date(repo):
    repo, env = repo
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env))
    flat = json.dumps(shown)
    for key in (
        "onnx_max_abs_diff",
        "d_loss",
        "fcd",
        "mnist_score",
        "memorisation_ratio",
        "test_accuracy",
    ):
        assert key in flat, key
    status = run(["dvc", "repro"], repo, env)
    assert "Data and pipelines are up to date" in status


def test_mlflow_store_holds_the_run(repo, tmp_path):
    repo, _ = repo
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcgan")
    (run_info,) = client.search_runs([experiment.experiment_id])
    run_id = run_info.info.run_id
    # The outputs name no run; the run names the files it produced, by content hash.
    assert run_id not in (repo / "models/training.json").read_text()
    assert run_id.encode() not in (repo / "models/generator.onnx").read_bytes()
    assert [r.info.run_id for r in runs_for_file(repo / "models/generator.onnx", uri)] == [run_id]
    data = run_info.data
    assert data.params["train.iterations"] == "6" and data.params["export.opset"] == "17"
    assert data.params["prepare.source"] == "sample" and data.tags["data_source"] == "sample"
    assert len(data.tags["mlflow.source.git.commit"]) == 40
    assert [m.step for m in client.get_metric_history(run_id, "d_loss")] == [3, 6]
    assert data.metrics["onnx_max_abs_diff"] <= 1e-5
    assert "fcd" in data.metrics and "class_share_7" in data.metrics
    # Timing lives in the run, not in DVC's outputs: CPU time compares runs on a shared machine.
    assert data.metrics["seconds_per_iteration"] > 0
    assert data.metrics["cpu_seconds_per_iteration"] > 0
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"samples", "losses.png", "onnx_samples.png", "samples_by_class.png"} <= artifacts
    mlflow.set_tracking_uri(uri)
    model = mlflow.onnx.load_model(f"runs:/{run_id}/generator")
    assert model.graph.input[0].name == "z"
    # The served model's environment is what its loader imports, at the versions that made
    # it; MLflow's inference listed the whole environment (TensorFlow, DVC: 179 lines).
    from importlib.metadata import version

    model_uri = f"runs:/{run_id}/generator"
    folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path)))
    pinned = [f"{name}=={version(name)}" for name in ("mlflow", "onnx", "onnxruntime", "numpy")]
    assert sorted((folder / "requirements.txt").read_text().split()) == sorted(pinned)
    # Artifacts live next to the store, not in whatever folder a stage ran from.
    assert (repo / "mlruns").is_dir()


def test_quality_is_scored_at_every_eval_interval_in_mlflow_the_plots_file_and_dvc_plots(repo):
    """train.eval_interval 3 of 6 iterations: two points, in each place a user compares runs."""
    repo, env = repo
    from mlflow.tracking import MlflowClient

    scored = [3, 6]
    rows = json.loads((repo / "reports/quality.json").read_text())
    assert [row["iteration"] for row in rows] == scored
    scores = {"fcd", "mnist_score", "min_class_share", "max_class_share"}
    # The averaged G's scores, and the live G's beside them (TINY trains with train.ema_decay).
    assert set(rows[0]) == {"iteration", *scores, *(f"live_{k}" for k in scores)}
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    history = client.get_metric_history(found.info.run_id, "quality/fcd")
    assert sorted((m.step, m.value) for m in history) == [(r["iteration"], r["fcd"]) for r in rows]
    lowest = min(rows, key=lambda r: r["fcd"])
    assert found.data.metrics["quality/best_fcd"] == lowest["fcd"]
    assert found.data.metrics["quality/best_fcd_iteration"] == lowest["iteration"]
    training = json.loads((repo / "models/training.json").read_text())
    assert (training["best_fcd"], training["best_fcd_iteration"]) == (
        lowest["fcd"],
        lowest["iteration"],
    )
    train_metrics = json.loads((repo / "reports/train_metrics.json").read_text())
    assert train_metrics["best_fcd"] == lowest["fcd"]
    # dvc plots show: the declared plot draws both points (its JSON holds the data it plots).
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo, env))["data"]
    points = shown["quality FCD"][0]["content"]["data"]["values"]
    assert [int(p["iteration"]) for p in points] == scored
    assert [float(p["fcd"]) for p in points] == [r["fcd"] for r in rows]


def test_the_averaged_generator_of_the_lowest_fcd_is_exported_evaluated_and_registered(repo):
    """TINY ships G's average kept at its lowest in-training FCD: training.json, the ONNX
    file's metadata, the evaluate stage's registered version and `dvc exp show`'s metrics
    all say so, and the ONNX file is that .keras file's export."""
    repo, env = repo
    import onnx
    from mlflow.tracking import MlflowClient

    from dcgan.files import sha256_file

    rows = json.loads((repo / "reports/quality.json").read_text())
    lowest = min(rows, key=lambda r: (r["fcd"], r["iteration"]))
    shipped = {"kind": "averaged", "keep": "best", "iteration": lowest["iteration"]}
    assert json.loads((repo / "models/training.json").read_text())["generator"] == shipped
    train_metrics = json.loads((repo / "reports/train_metrics.json").read_text())
    assert train_metrics["generator_iteration"] == lowest["iteration"]
    meta = {p.key: p.value for p in onnx.load(str(repo / "models/generator.onnx")).metadata_props}
    assert json.loads(meta["generator"]) == shipped
    assert meta["generator_sha256"] == sha256_file(repo / "models/generator.keras")
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'dcgan-generator'")
    assert json.loads(version.tags["generator"]) == shipped
    assert version.tags["onnx_sha256"] == sha256_file(repo / "models/generator.onnx")
    train_run = client.get_run(version.run_id)
    assert train_run.data.tags["generator_kind"] == "averaged"
    assert train_run.data.metrics["generator_iteration"] == lowest["iteration"]


def test_the_environment_is_on_the_record(repo):
    """training.json, the MLflow run, the ONNX file and `dcgan runs` name the lock's SHA-256,
    the key packages' versions and the device that trained (cpu here); dvc.lock names the lock
    behind every stage."""
    repo, env = repo
    import onnx
    from mlflow.tracking import MlflowClient

    from dcgan.machine import devices, environment

    lock = repo / "uv.lock"
    expected = {**environment.describe(lock), **devices.describe()}
    assert devices.of_record(expected) == {"device": "cpu"}  # the machines this suite runs on
    assert expected["uv_lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    training = json.loads((repo / "models/training.json").read_text())
    assert training["environment"] == expected
    model = onnx.load(str(repo / "models/generator.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert environment.from_tags(meta) == expected
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    (found,) = runs_for_file(repo / "models/generator.onnx", f"sqlite:///{repo / 'mlflow.db'}")
    tags = client.get_run(found.info.run_id).data.tags
    assert environment.from_tags(tags) == expected
    locked = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    lock_md5 = hashlib.md5(lock.read_bytes()).hexdigest()
    for stage in ("prepare", "train", "classifier", "export", "evaluate", "animate", "site"):
        deps = {d["path"]: d["md5"] for d in locked[stage]["deps"]}
        assert deps["uv.lock"] == lock_md5, stage
    shown = run(
        ["dcgan", "runs", "models/generator.onnx"],
        repo,
        {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"},
    )
    summary = environment.summary(expected)
    assert f"models/generator.onnx: exported in {summary}" in shown
    assert f"  trained in {summary}" in shown


def outputs(repo: Path) -> dict[str, str]:
    """SHA-256 of dvc.lock and of every file of every output dvc.yaml declares."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = ["dvc.lock"]
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            paths += [next(iter(o)) if isinstance(o, dict) else o for o in stage.get(kind, [])]
    files = {}
    for path in paths:
        root = repo / path
        for f in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if f.is_file():
                files[str(f.relative_to(repo))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


def test_identical_rerun_gives_identical_bytes_and_keeps_the_lineage(repo):
    """Train, export and evaluate forced again in place. Every stage rerun from nothing, the
    classifier and the page included, is test_soak's: its killed clone must end with the
    built pipeline's dvc.lock and generator bytes."""
    repo, env = repo
    from mlflow.tracking import MlflowClient

    before = outputs(repo)
    assert len(before) >= 20 and "models/generator.onnx" in before
    log = run(["dvc", "repro", "-f", "-s", "train", "export", "evaluate"], repo, env)
    assert [s for s in ("train", "export", "evaluate") if f"Running stage '{s}'" not in log] == []
    after = outputs(repo)
    assert {k for k in before if before[k] != after.get(k)} == set()  # dvc.lock included
    assert after == before

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    assert len(runs) == 2  # both trainings are recorded
    # From the ONNX file alone: both runs that produced these bytes, newest first, and
    # export and evaluate of the rerun logged into the rerun's run.
    found = runs_for_file(repo / "models/generator.onnx", uri)
    assert {r.info.run_id for r in found} == {r.info.run_id for r in runs}
    newest = client.get_run(found[0].info.run_id)
    assert newest.info.start_time == max(r.info.start_time for r in runs)
    assert "fcd" in newest.data.metrics and "onnx_size_mb" in newest.data.metrics
    assert newest.data.tags["dcgan.onnx_sha256"] == before["models/generator.onnx"]


def test_params_changed_and_back_are_restored_from_the_run_cache(repo):
    repo, env = repo
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp_id = client.get_experiment_by_name("dcgan").experiment_id
    first = outputs(repo)
    params = (repo / "params.yaml").read_text()
    write_params(repo / "params.yaml", **{**TINY, "train": {**TINY["train"], "seed": 1}})
    run(["dvc", "repro"], repo, env)
    assert outputs(repo)["models/generator.keras"] != first["models/generator.keras"]
    n_runs = len(client.search_runs([exp_id]))

    (repo / "params.yaml").write_text(params)
    log = run(["dvc", "repro"], repo, env)
    assert "Stage 'train' is cached - skipping run" in log, log
    assert "Stage 'export' is cached - skipping run" in log, log
    assert outputs(repo) == first
    assert len(client.search_runs([exp_id])) == n_runs  # restored, not retrained


def test_a_release_tag_makes_the_generator_an_artifact_dvc_can_get(repo, tmp_path):
    repo, env = repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "trained"], repo, env)
    run(["git", "tag", "-a", "generator@v0.0.1", "-m", "first generator"], repo, env)
    run(["dvc", "artifacts", "get", str(repo), "generator", "-o", "got.onnx"], tmp_path, env)
    assert (tmp_path / "got.onnx").read_bytes() == (repo / "models/generator.onnx").read_bytes()


def test_dvc_exp_run_and_show(repo):
    """An experiment, named, in `dvc exp show` with its metrics. Seed 1 is in the run cache
    from the test above (run alone, this test trains it): experiments that train are
    test_team's (in the workspace) and test_scale's (queued)."""
    repo, env = repo
    run(["dvc", "exp", "run", "-S", "train.seed=1", "-n", "short"], repo, env)
    shown = run(["dvc", "exp", "show", "--json"], repo, env)
    assert "short" in shown and "onnx_max_abs_diff" in shown and "d_loss" in shown
    assert "mnist_score" in shown
