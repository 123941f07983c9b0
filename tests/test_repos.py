"""The copies the slow tier takes of the built tiny pipeline are independent of it."""

from __future__ import annotations

from .repos import BuiltPipeline, copy_built


def test_a_copys_mlflow_store_logs_into_the_copy(tmp_path):
    from mlflow.tracking import MlflowClient

    built = tmp_path / "built"
    (built / "mlruns").mkdir(parents=True)
    uri = f"sqlite:///{built / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("dcgan", (built / "mlruns").as_uri())
    first = client.create_run(experiment).info.run_id

    copy, _ = copy_built(BuiltPipeline(built, {}, 0.0, 0.0), tmp_path / "copy")
    client = MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}")
    assert client.get_experiment(experiment).artifact_location == (copy / "mlruns").as_uri()
    assert client.get_run(first).info.artifact_uri.startswith((copy / "mlruns").as_uri())
    (copy / "note.txt").write_text("x")
    run = client.create_run(experiment).info.run_id
    client.log_artifact(run, str(copy / "note.txt"))
    assert list((copy / "mlruns").rglob("note.txt")) and not list(built.rglob("note.txt"))
