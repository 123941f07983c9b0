"""Reliability: kill -9 mid-run and resume to identical weights; fail fast on a bad store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from dcgan.config import ClassifierConfig, PrepareConfig
from dcgan.pipeline import classifier, prepare
from dcgan.pipeline.paths import ClassifierPaths, PreparePaths

from .conftest import free_port, stage_command, write_params

pytestmark = pytest.mark.slow

# Long enough to be killed between two checkpoints after the third (at 60), with intervals
# left to run after the resume.
TRAIN = {
    "iterations": 120,
    "batch_size": 16,
    "sample_interval": 20,
    "checkpoint_interval": 20,
    "eval_interval": 10,  # twice a checkpoint interval: the kill comes after a score that
    # MLflow holds and the checkpoint does not, which the resumed run must not log again
    "eval_samples": 200,
    # The shipped generator is the average's copy of the lowest FCD: both must resume too.
    "ema_decay": 0.9,
    "keep": "best",
    "experiment": "resume",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("resume")
    prepare.run(
        PrepareConfig(source="sample", test_fraction=0.2, seed=0), PreparePaths(work / "data")
    )
    # The scorer of train.eval_interval: one epoch is enough to give G's samples a curve.
    classifier.run(
        ClassifierConfig(epochs=1, batch_size=128, seed=0),
        ClassifierPaths(
            data=work / "data", model=work / "classifier.keras", report=work / "classifier.json"
        ),
    )
    write_params(work / "params.yaml", train=TRAIN)
    return work


def train_cmd(work: Path, name: str) -> list[str]:
    """dvc.yaml's train command, its outputs and checkpoints under ``work / name``."""
    out = work / name
    return stage_command(
        "train",
        out,
        params=work / "params.yaml",
        data=work / "data",
        checkpoints=out / "checkpoints",
        classifier=work / "classifier.keras",
    )


def env_for(work: Path, name: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / name}.db"}


def weights(path: Path) -> list[np.ndarray]:
    from dcgan.saving import load_model

    return [w.numpy() for w in load_model(path, "train").weights]


def metric_history(work: Path, name: str, key: str = "d_loss"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / name}.db")
    exp = client.get_experiment_by_name("resume")
    runs = client.search_runs([exp.experiment_id])
    return runs, [
        (m.step, m.value)
        for m in sorted(client.get_metric_history(runs[0].info.run_id, key), key=lambda m: m.step)
    ]


def scored_steps(work: Path, name: str) -> set[int]:
    """Iterations whose quality scores the running stage has logged to its MLflow store."""
    import sqlite3

    db = work / f"{name}.db"
    if not db.exists():
        return set()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
        try:
            rows = con.execute("SELECT step FROM metrics WHERE key = 'quality/fcd'").fetchall()
        except sqlite3.OperationalError:  # the tables are not made yet, or the db is locked
            return set()
    return {int(step) for (step,) in rows}


def test_sigkill_then_resume_gives_identical_weights_and_one_history(workdir, request):
    # The uninterrupted run trains beside the one that is killed: its outputs are read last.
    # Its log into a file: a pipe read only at the end could fill and stall it.
    log = workdir / "straight.log"
    with log.open("w") as out:
        uninterrupted = subprocess.Popen(
            train_cmd(workdir, "straight"),
            env=env_for(workdir, "straight"),
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    request.addfinalizer(uninterrupted.kill)  # a no-op once it has ended

    state = workdir / "crashed/checkpoints/state.json"
    proc = subprocess.Popen(
        train_cmd(workdir, "crashed"),
        env=env_for(workdir, "crashed"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            saved = json.loads(state.read_text())["iteration"]
            if saved >= 60 and max(scored_steps(workdir, "crashed"), default=0) > saved:
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["iteration"] < TRAIN["iterations"]
    assert not (workdir / "crashed/models/generator.keras").exists(), "finished before the kill"

    resumed = subprocess.run(
        train_cmd(workdir, "crashed"),
        env=env_for(workdir, "crashed"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from checkpoint {workdir / 'crashed/checkpoints'} at iteration" in (
        resumed.stderr
    )
    assert not (workdir / "crashed/checkpoints").exists()  # discarded once the outputs exist
    assert uninterrupted.wait(timeout=600) == 0, log.read_text()[-3000:]

    # The averaged generator kept at the lowest FCD, and D, which trained against the live G.
    for model in ("generator", "discriminator"):
        straight = weights(workdir / f"straight/models/{model}.keras")
        again = weights(workdir / f"crashed/models/{model}.keras")
        assert all(np.array_equal(a, b) for a, b in zip(straight, again, strict=True)), model
    kept = json.loads((workdir / "crashed/models/training.json").read_text())["generator"]
    assert kept == json.loads((workdir / "straight/models/training.json").read_text())["generator"]
    assert (kept["kind"], kept["keep"]) == ("averaged", "best")

    runs, history = metric_history(workdir, "crashed")
    assert len(runs) == 1  # the resumed stage continued the same MLflow run
    steps = [step for step, _ in history]
    intervals = list(range(20, TRAIN["iterations"] + 1, 20))
    assert steps == intervals  # continuous, no gaps, no duplicates
    _, reference = metric_history(workdir, "straight")
    assert history == reference
    # Every progress grid is there, including those made before the crash.
    grids = sorted(p.name for p in (workdir / "crashed/reports/samples").glob("*.png"))
    assert grids == [f"iter_{i:06d}.png" for i in intervals]
    csv_rows = (workdir / "crashed/reports/train_history.csv").read_text().splitlines()
    assert csv_rows == (workdir / "straight/reports/train_history.csv").read_text().splitlines()
    # The quality curve too: every eval_interval once, those scored before the kill included,
    # in the DVC plots file and in MLflow, with the uninterrupted run's values.
    scored = list(range(10, TRAIN["iterations"] + 1, 10))
    quality = json.loads((workdir / "crashed/reports/quality.json").read_text())
    assert [row["iteration"] for row in quality] == scored
    assert quality == json.loads((workdir / "straight/reports/quality.json").read_text())
    _, fcd = metric_history(workdir, "crashed", "quality/fcd")
    assert [step for step, _ in fcd] == scored
    assert fcd == metric_history(workdir, "straight", "quality/fcd")[1]
    assert kept["iteration"] == min(quality, key=lambda r: (r["fcd"], r["iteration"]))["iteration"]


@pytest.mark.parametrize(
    "uri",
    [f"http://127.0.0.1:{free_port()}", "sqlite:////nonexistent/x/m.db"],
    ids=["server-down", "unwritable-sqlite"],
)
def test_bad_tracking_store_fails_fast_before_training(workdir, tmp_path, uri):
    cmd = train_cmd(workdir, "nostore")
    # Every output and the checkpoints under tmp_path, which must stay empty.
    cmd = [w.replace(str(workdir / "nostore"), str(tmp_path)) for w in cmd]
    start = time.monotonic()
    proc = subprocess.run(
        cmd,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and uri in lines[0]
    assert elapsed < 30  # includes TensorFlow's start-up; the check itself takes < 10 s
    assert not (tmp_path / "models").exists() and not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "reports").exists()


# The server dies at the grid of iteration 10; 12 intervals are logged in all, and no
# periodic checkpoint comes before the one the stage writes when the retry budget runs out.
DIES = {
    **TRAIN,
    "iterations": 24,
    "sample_interval": 2,
    "checkpoint_interval": 50,
    "eval_interval": 3,  # off the sample interval: the store may fail while logging a score
}
BUDGET = 5  # seconds of retries (DCGAN_TRACKING_RETRY_SECONDS) before the stage gives up


def test_a_tracking_server_that_dies_mid_training_loses_nothing(workdir, tmp_path, request):
    """Kill -9 a real `mlflow server` at iteration 10: the stage stops within the retry
    budget with one line that names the server (never its password) and checkpoints the
    last interval; after a restart the rerun completes the same run, every interval once,
    and the generator is the uninterrupted one, byte for byte."""
    import secrets

    from mlflow.tracking import MlflowClient

    from dcgan.tracking.retry import RETRY_ENV

    from .conftest import start_mlflow_server, stop_server

    params = write_params(tmp_path / "params.yaml", train=DIES)

    def cmd(name: str) -> list[str]:
        out = tmp_path / name
        return stage_command(
            "train",
            out,
            params=params,
            data=workdir / "data",
            checkpoints=out / "ckpt",
            classifier=workdir / "classifier.keras",
        )

    # The uninterrupted run trains beside the rest: only its generator is read, at the end.
    # Its log into a file: a pipe read only at the end could fill and stall it.
    log = tmp_path / "straight.log"
    with log.open("w") as out:
        reference = subprocess.Popen(
            cmd("straight"),
            env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'straight.db'}"},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    request.addfinalizer(reference.kill)  # a no-op once it has ended

    folder = tmp_path / "server"
    folder.mkdir()
    backend, port, secret = f"sqlite:///{folder / 'mlflow.db'}", free_port(), secrets.token_hex(8)
    uri = f"http://alice:{secret}@127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, RETRY_ENV: str(BUDGET)}
    server = start_mlflow_server(folder, backend, port)
    try:
        proc = subprocess.Popen(
            cmd("crashed"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        grid = tmp_path / "crashed/reports/samples/iter_000010.png"
        deadline = time.monotonic() + 300
        while not grid.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        stop_server(server, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = proc.communicate(timeout=300)
        waited = time.monotonic() - killed
    finally:
        stop_server(server, signal.SIGKILL)

    assert proc.returncode == 2, stderr[-3000:]
    assert waited < BUDGET + 30, waited  # the budget, plus the steps to the next interval and exit
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert f"alice:***@127.0.0.1:{port} did not answer for {BUDGET} s" in errors[0]
    assert "Traceback" not in stderr and secret not in stderr
    state = json.loads((tmp_path / "crashed/ckpt/state.json").read_text())
    assert 10 <= state["iteration"] < DIES["iterations"] and state["iteration"] % 2 == 0
    assert f"checkpointed at iteration {state['iteration']}" in errors[0]
    assert not (tmp_path / "crashed/models/generator.keras").exists()

    server = start_mlflow_server(folder, backend, port)
    try:
        rerun = subprocess.run(cmd("crashed"), env=env, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert secret not in rerun.stderr
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name(DIES["experiment"])
        (run,) = client.search_runs([experiment.experiment_id])
        history = client.get_metric_history(run.info.run_id, "d_loss")
        fcd = client.get_metric_history(run.info.run_id, "quality/fcd")
        grids = {f.path for f in client.list_artifacts(run.info.run_id, "samples")}
    finally:
        stop_server(server)

    assert reference.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert run.info.status == "FINISHED"
    intervals = range(2, DIES["iterations"] + 1, 2)
    assert sorted(m.step for m in history) == list(intervals)  # each interval once
    assert sorted(m.step for m in fcd) == list(range(3, DIES["iterations"] + 1, 3))
    assert grids == {f"samples/iter_{i:06d}.png" for i in intervals}
    assert (tmp_path / "crashed/models/generator.keras").read_bytes() == (
        tmp_path / "straight/models/generator.keras"
    ).read_bytes()
    assert not (tmp_path / "crashed/ckpt").exists()
