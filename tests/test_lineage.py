"""From a model file to the MLflow runs that produced it, by the file's SHA-256 alone."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dcgan.cli import main
from dcgan.tracking.lineage import GENERATOR_TAG, ONNX_TAG, runs_for_file
from dcgan.tracking.store import tracking_uri
from dcgan.tracking.tracker import Tracker


def test_runs_for_file_and_the_cli(tmp_path, capsys):
    onnx_file = tmp_path / "generator.onnx"
    onnx_file.write_bytes(b"an onnx model")
    digest = hashlib.sha256(b"an onnx model").hexdigest()
    uri = tracking_uri()  # the test's own store (conftest isolates MLflow)
    first = Tracker.start("lineage", uri=uri)
    first.set_tags({ONNX_TAG: digest})
    second = Tracker.start("other experiment", uri=uri)
    second.set_tags({ONNX_TAG: digest, GENERATOR_TAG: "0" * 64})
    Tracker.start("lineage", uri=uri).set_tags({ONNX_TAG: "f" * 64})  # another file's run

    found = [r.info.run_id for r in runs_for_file(onnx_file, uri)]
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

    from dcgan.tracking.store import mlflow_uris

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


def test_a_first_run_that_loses_the_race_to_create_the_experiment_joins_it(tmp_path, monkeypatch):
    """Two machines start their first runs at once against a team's server: each looks the
    experiment up, finds none and creates it, and the store refuses the second create with
    RESOURCE_ALREADY_EXISTS (a server's RestException carries the same code, as test_team's
    two machines once showed). The loser must train into the winner's experiment."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(tmp_path / "mlflow.db")
    lookup = MlflowClient.get_experiment_by_name
    looked: list[str] = []

    def before_the_other_machine_created_it(self, name):
        looked.append(name)
        if len(looked) == 1:  # the other machine's create lands just after our lookup
            MlflowClient(uri).create_experiment(name)
            return None
        return lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", before_the_other_machine_created_it)
    tracker = Tracker.start("team", "second", uri=uri)
    monkeypatch.undo()
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "team"]
    assert client.get_run(tracker.run_id).info.experiment_id == experiment.experiment_id


def test_a_run_that_loses_the_race_to_add_the_data_set_logs_the_one_another_added(
    tmp_path, monkeypatch
):
    """Two machines' first runs log the same data set at once: the store looks it up, finds
    none, and adds it, and the second add is refused (test_team's two machines once stopped
    on PostgreSQL's "dataset_pk"). Here the other run's add lands between this run's lookup
    and its add, in a real store; the run must log the data set the other one added."""
    from mlflow.store.tracking.dbmodels.models import SqlDataset
    from mlflow.tracking import MlflowClient
    from sqlalchemy.orm import Query

    uri = tracking_uri(tmp_path / "mlflow.db")
    other, this = Tracker.start("team", "other", uri=uri), Tracker.start("team", "this", uri=uri)
    data = ("sample", "ab" * 32, "file:///data/prepared", {"train_count": 4000})
    lookup, raced = Query.all, []

    def before_the_other_run_added_it(query):
        if not raced and query.column_descriptions[0]["entity"] is SqlDataset:
            raced.append(True)
            other.log_dataset(*data)
            return []  # what this run's lookup found, a moment before
        return lookup(query)

    monkeypatch.setattr(Query, "all", before_the_other_run_added_it)
    this.log_dataset(*data)
    monkeypatch.undo()
    assert raced
    client = MlflowClient(uri)
    logged = {
        tracker.run_id: [i.dataset for i in client.get_run(tracker.run_id).inputs.dataset_inputs]
        for tracker in (other, this)
    }
    assert {run: [(d.name, d.digest) for d in sets] for run, sets in logged.items()} == {
        other.run_id: [("sample", ("ab" * 32)[:36])],
        this.run_id: [("sample", ("ab" * 32)[:36])],
    }


def test_a_run_whose_process_died_is_closed_as_killed_by_the_next(tmp_path):
    """A train stage killed before its first checkpoint leaves its run RUNNING; the next
    train on this machine marks it KILLED. Live processes' runs and other machines' runs
    stay RUNNING."""
    import socket
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    from dcgan.tracking.tracker import Tracker
    from dcgan.tracking.watcher import HOST_TAG, PID_TAG

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid, host = gone.stdout.strip(), socket.gethostname()
    owners = {
        "dead": {HOST_TAG: host, PID_TAG: dead_pid},
        "alive": {HOST_TAG: host, PID_TAG: str(os.getppid())},
        "elsewhere": {HOST_TAG: "another-machine", PID_TAG: dead_pid},
        "older": {},  # no tags: made by an earlier version of the stage
    }
    runs = {name: Tracker.start("e", name, tags, uri=uri).run_id for name, tags in owners.items()}

    current = Tracker.start("e", "current", uri=uri)
    assert current.close_abandoned() == [runs["dead"]]

    client = MlflowClient(tracking_uri=uri)
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {
        "dead": "KILLED",
        "alive": "RUNNING",
        "elsewhere": "RUNNING",
        "older": "RUNNING",
    }
    assert client.get_run(current.run_id).info.status == "RUNNING"


def test_logging_the_onnx_model_leaves_a_finished_run_finished(tmp_path):
    """Export logs into the training run, which train closed: it must not turn RUNNING (a
    kill would leave it so) nor get a new end time."""
    import numpy as np
    import onnx
    from mlflow.tracking import MlflowClient
    from onnx import TensorProto, helper

    from dcgan.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = Tracker.start("e", "trained", uri=uri)
    tracker.finish()
    client = MlflowClient(tracking_uri=uri)
    before = client.get_run(tracker.run_id).info
    seen = []
    original = client.__class__.log_outputs

    def spy(self, run_id, models):  # the one call that touches the run while logging
        seen.append(self.get_run(run_id).info.status)
        return original(self, run_id, models)

    x = helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 2])
    # Weights over onnx's 1 kB threshold, which MLflow's default would move into a side file.
    ones = np.ones(512, np.float32).tobytes()
    weights = helper.make_tensor("w", TensorProto.FLOAT, [512], ones, raw=True)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["image"])], "g", [x], [y], initializer=[weights]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    exported = model.SerializeToString()  # (saving with external data rewrites the proto)
    example = np.ones((1, 2), np.float32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client.__class__, "log_outputs", spy)
        model_uri = tracker.log_onnx_model(model, "generator", example, {"image": example})

    after = client.get_run(tracker.run_id)
    assert seen == ["FINISHED"]
    assert after.info.status == "FINISHED" and after.info.end_time == before.end_time
    assert model_uri.startswith("models:/")
    logged = client.get_logged_model(model_uri.split("/", 1)[1])
    assert logged.source_run_id == tracker.run_id
    assert logged.experiment_id == before.experiment_id

    # Served, the model refuses what would run away before it computes; as ONNX it is as is.
    import mlflow
    from mlflow.exceptions import MlflowException

    from dcgan.tracking.serving import MAX_BATCH
    from dcgan.tracking.store import mlflow_uris

    with mlflow_uris(uri):
        served = mlflow.pyfunc.load_model(model_uri)
        plain = mlflow.onnx.load_model(model_uri)
        folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "d")))
    assert plain.graph.node[0].op_type == "Identity"
    # One self-contained file, the exported bytes: what onnxruntime anywhere can load.
    assert (folder / "model.onnx").read_bytes() == exported
    z = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert np.array_equal(served.predict(z)["image"], z)
    with pytest.raises(MlflowException, match=f"this server takes at most {MAX_BATCH}") as big:
        served.predict(np.zeros((MAX_BATCH + 1, 2), np.float32))
    z[1, 0] = np.nan
    with pytest.raises(MlflowException, match="not finite numbers") as nan:
        served.predict(z)
    assert big.value.get_http_status_code() == nan.value.get_http_status_code() == 400


WATCHED = """
import json, sys, time
from dcgan.tracking.tracker import Tracker
from dcgan.tracking.watcher import process_tags
runs = {}
for name in ("killed", "taken over", "released"):
    tracker = Tracker.start("e", name, process_tags(), uri=sys.argv[1])
    tracker.watch()
    runs[name] = (tracker.run_id, tracker._watcher.pid)
    if name == "released":
        tracker.release()
print(json.dumps(runs), flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: nobody may reap a reparented watcher in a container)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.slow  # three processes import MLflow: ~40 s
def test_the_watcher_closes_the_run_of_a_process_killed_outright(tmp_path):
    """SIGKILL leaves no handler to close the run, and a rerun restored from DVC's run-cache
    never trains again: the watcher marks the run KILLED. A run another process carries on
    (its pid tag says so), or one its process released, is left as it is."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from dcgan.tracking.watcher import PID_TAG

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments()  # the tables, made here where MLflow is already imported
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHED, uri],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        runs = json.loads(proc.stdout.readline())
        client.set_tag(runs["taken over"][0], PID_TAG, "1")  # a resumed train carries it on
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the watchers are in their own sessions
        proc.wait()
    deadline = time.monotonic() + 90
    while not all(_gone(w) for _, w in runs.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(_gone(w) for _, w in runs.values()), "a watcher outlived its work"
    status = {name: client.get_run(run_id).info.status for name, (run_id, _) in runs.items()}
    assert status == {"killed": "KILLED", "taken over": "RUNNING", "released": "RUNNING"}
