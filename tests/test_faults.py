"""Faults lose nothing and the record stays true: what a second process, a bad file or a dead
server does to a run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dcgan.config import PrepareConfig, load_config
from dcgan.errors import DcganError
from dcgan.pipeline.paths import ClassifierPaths, PreparePaths

from .conftest import paths_of, run, write_params

TINY_TRAIN = {
    "iterations": 2,
    "batch_size": 8,
    "sample_interval": 1,
    "eval_interval": 0,  # no classifier here: these tests are about params and data
    "experiment": "faults",
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from dcgan.pipeline import prepare

    folder = tmp_path_factory.mktemp("faults") / "data"
    prepare.run(PrepareConfig(source="sample", test_fraction=0.2, seed=0), PreparePaths(folder))
    return folder


@pytest.mark.slow  # runs the train stage
def test_params_changed_while_training_write_nothing_and_fail(prepared, tmp_path, monkeypatch):
    """Another `dvc exp run -S train.seed=8` in the same clone rewrites params.yaml while this
    one trains with seed 0: DVC would record seed 8 for a model trained with seed 0."""
    from mlflow.tracking import MlflowClient

    from dcgan.pipeline import train
    from dcgan.tracking.store import tracking_uri

    params = write_params(tmp_path / "params.yaml", train=TINY_TRAIN)
    cfg = load_config("train", params)
    real_loop = train.train_loop

    def another_process_edits_params(*args, **kwargs):
        write_params(params, train={**TINY_TRAIN, "seed": 8})
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(train, "train_loop", another_process_edits_params)
    outputs = paths_of("train", tmp_path, data=prepared, params=params)
    with pytest.raises(DcganError, match=r"changed while training \(train.seed 0 -> 8\)"):
        train.run(cfg, outputs, progress=False)
    assert not outputs.generator.exists() and not outputs.training.exists()
    assert not outputs.metrics.exists()
    client = MlflowClient(tracking_uri=tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    assert run.info.status == "FAILED"


@pytest.mark.slow  # runs the train stage
def test_params_changed_while_training_stop_at_the_next_interval(prepared, tmp_path, monkeypatch):
    """Once params.yaml no longer describes the run, the iterations left would be CPU spent
    on a model that cannot be recorded: the run stops at the next interval."""
    from dcgan.gan import loop
    from dcgan.pipeline import train

    params = write_params(tmp_path / "params.yaml", train={**TINY_TRAIN, "iterations": 6})
    real_save = loop.save_grid  # what the SaveGrid callback calls
    saved: list[str] = []

    def edit_after_first_grid(images, path, *args, **kwargs):
        saved.append(Path(path).name)
        real_save(images, path, *args, **kwargs)
        write_params(params, train={**TINY_TRAIN, "iterations": 6, "seed": 8})

    monkeypatch.setattr(loop, "save_grid", edit_after_first_grid)
    outputs = paths_of("train", tmp_path, data=prepared, params=params)
    with pytest.raises(DcganError, match=r"changed while training \(train.seed 0 -> 8\)"):
        train.run(load_config("train", params), outputs, progress=False)
    assert saved == ["iter_000001.png"]
    assert not outputs.generator.exists()


@pytest.mark.slow  # runs the train stage
def test_outputs_checked_out_under_a_run_blame_the_params_change(prepared, tmp_path, monkeypatch):
    """The second `dvc exp run` also force-checks-out this stage's outputs before it meets
    DVC's lock, so reports/samples can vanish between the interval's params check and its
    write (seen in CI): the error still names the params change and the way out."""
    import shutil

    from dcgan.pictures import plots
    from dcgan.pipeline import train

    params = write_params(tmp_path / "params.yaml", train=TINY_TRAIN)
    real_grid_image = plots.grid_image

    class CheckedOutMidWrite:  # the temporary file exists; then its folder goes
        def __init__(self, image):
            self.image = image

        def save(self, fp, **kwargs):
            write_params(params, train={**TINY_TRAIN, "seed": 8})
            shutil.rmtree(Path(fp).parent)
            return self.image.save(fp, **kwargs)

    monkeypatch.setattr(
        plots, "grid_image", lambda *a, **k: CheckedOutMidWrite(real_grid_image(*a, **k))
    )
    outputs = paths_of("train", tmp_path, data=prepared, params=params)
    with pytest.raises(DcganError, match=r"changed while training \(train.seed 0 -> 8\)") as info:
        train.run(load_config("train", params), outputs, progress=False)
    assert "dvc exp run --queue" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)  # kept in the chain
    assert not outputs.generator.exists()


@pytest.mark.slow  # runs the train stage
def test_unchanged_params_train_as_before(prepared, tmp_path, monkeypatch):
    """The guard reads params.yaml at every interval and before the outputs, and changes
    nothing when it finds it unchanged: the same bytes as a run without it."""
    from dcgan.pipeline import params_guard, train

    params = write_params(tmp_path / "params.yaml", train=TINY_TRAIN)
    cfg = load_config("train", params)
    reads = []
    load = params_guard.load_config
    monkeypatch.setattr(params_guard, "load_config", lambda *a: reads.append(a) or load(*a))
    guarded = paths_of("train", tmp_path / "guarded", data=prepared, params=params)
    unguarded = paths_of("train", tmp_path / "bare", data=prepared)
    train.run(cfg, guarded, progress=False)
    assert len(reads) == TINY_TRAIN["iterations"] + 1  # each interval (1 here), then the end
    train.run(cfg, unguarded, progress=False)
    assert len(reads) == TINY_TRAIN["iterations"] + 1
    for name in ("generator", "discriminator", "metrics"):
        ours, bare = getattr(guarded, name), getattr(unguarded, name)
        assert ours.read_bytes() == bare.read_bytes(), name


def _damaged_copy(prepared, tmp_path, damage) -> object:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(prepared, copy)
    x = np.load(copy / "x_train.npy")
    damage(x)
    np.save(copy / "x_train.npy", x)
    return copy


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda x: x.__setitem__((5, 3, 3, 0), np.nan), "holds NaN or infinite pixels"),
        (lambda x: x.__setitem__((0, 0, 0, 0), 3.0), r"holds pixels in \[-1, 3\], outside"),
    ],
    ids=["nan", "out-of-range"],
)
def test_damaged_prepared_data_is_refused_by_train_and_classifier(
    prepared, tmp_path, capsys, damage, message
):
    """One NaN pixel used to train a NaN generator (and a 10 % classifier) with exit 0."""
    from dcgan.errors import run_main
    from dcgan.pipeline import classifier, train

    data = _damaged_copy(prepared, tmp_path, damage)
    cfg = load_config("train", write_params(tmp_path / "params.yaml", train=TINY_TRAIN))
    outputs = paths_of("train", tmp_path, data=data)
    for call in (
        lambda: train.run(cfg, outputs, progress=False),
        lambda: classifier.run(
            load_config("classifier", tmp_path / "params.yaml"),
            ClassifierPaths(data=data, model=tmp_path / "c.keras", report=tmp_path / "c.json"),
        ),
    ):
        assert run_main(call) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "x_train.npy" in errors[0], errors
        assert re.search(message, errors[0]) and "dvc repro -f prepare" in errors[0]
    assert not outputs.generator.exists() and not (tmp_path / "c.keras").exists()


def test_fewer_images_than_a_batch_is_refused(tmp_path):
    from dcgan.data import RawMnist, write_prepared
    from dcgan.pipeline import train

    digits = np.zeros((3, 28, 28), np.uint8)
    raw = RawMnist(digits, np.arange(3), digits, np.arange(3), "three digits", "0" * 64)
    write_prepared(raw, tmp_path / "data", {})
    cfg = load_config("train", write_params(tmp_path / "params.yaml", train=TINY_TRAIN))
    with pytest.raises(DcganError, match=r"train.batch_size=8 is more than the 3 training"):
        train.run(cfg, paths_of("train", tmp_path, data=tmp_path / "data"), progress=False)


def test_a_non_finite_loss_stops_training(tiny_train_cfg, tiny_images, monkeypatch):
    from dcgan.gan.loop import train_loop
    from dcgan.gan.training import GAN

    gan = GAN(tiny_train_cfg, tiny_images)
    real_step = gan.train_step

    def diverged():
        metrics = dict(real_step())
        metrics["g_loss"] = np.float32("nan")
        return metrics

    monkeypatch.setattr(gan, "train_step", diverged)
    with pytest.raises(DcganError, match="training diverged: non-finite losses at iteration 2"):
        train_loop(gan, progress=False)


@pytest.mark.parametrize(
    "uri",
    [
        "http://alice:{secret}@127.0.0.1:{port}",
        "postgresql+psycopg://alice:{secret}@127.0.0.1:{port}/mlflow",
        "mysql://alice:{secret}@127.0.0.1:{port}/mlflow",
    ],
    ids=["server", "postgresql", "mysql"],
)
def test_a_store_that_does_not_answer_fails_fast_and_hides_the_password(uri):
    """No retries for minutes, the host named as it is, the password never shown."""
    import secrets
    import time

    from dcgan.tracking.store import check_tracking_store

    from .conftest import free_port

    secret = secrets.token_urlsafe(12)
    port = free_port()
    uri = uri.format(secret=secret, port=port)
    start = time.monotonic()
    with pytest.raises(DcganError) as info:
        check_tracking_store(uri, timeout=2)
    message = str(info.value)
    assert time.monotonic() - start < 10
    assert secret not in message and "alice:***@127.0.0.1" in message
    assert "does not answer" in message and "Name or service not known" not in message
    assert "\n" not in message


def test_safe_uri_masks_passwords_in_userinfo_and_query():
    from dcgan.tracking.store import safe_uri

    assert safe_uri("http://u:p4ss@host:5000/x") == "http://u:***@host:5000/x"
    assert safe_uri("postgresql://u:p%40ss@db/m?password=p2&sslmode=require") == (
        "postgresql://u:***@db/m?password=***&sslmode=require"
    )
    assert safe_uri("sqlite:////tmp/mlflow.db?timeout=60") == "sqlite:////tmp/mlflow.db?timeout=60"
    assert safe_uri("http://host:5000") == "http://host:5000"


def test_a_garbage_sqlite_store_says_what_the_file_is(tmp_path):
    from dcgan.tracking.store import check_tracking_store

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DcganError) as info:
        check_tracking_store(f"sqlite:///{db}")
    message = str(info.value)
    assert f"move {db} away if it is not an MLflow store" in message
    assert "start it" not in message and "server" not in message


@pytest.mark.parametrize("seed", ["-1", "4294967296", "x"])
def test_dcgan_sample_refuses_a_bad_seed_in_one_line(seed, capsys):
    from dcgan.cli import main

    with pytest.raises(SystemExit) as info:
        main(["sample", "--seed", seed, "--out", "never.png"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "argument --seed: expected" in err


def test_each_try_sees_mlflow_bounded_and_the_environment_is_put_back(monkeypatch):
    """Inside a try MLflow retries nothing itself and each request has a timeout; after it,
    the environment is as it was: a value the user set stays, an unset name stays unset."""
    import os

    from dcgan.tracking.retry import call_store

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # the user's own
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    seen = call_store(
        "sqlite:///unused.db",
        "reading",
        lambda: {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",)},
    )
    assert seen == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "120"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_tracker_calls_are_retried_within_the_budget_then_stop_in_one_line(monkeypatch):
    import secrets
    import time

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    from dcgan.tracking.retry import RETRY_ENV, TrackerUnavailable, call_store

    secret = secrets.token_hex(8)
    uri = f"http://alice:{secret}@127.0.0.1:9"
    calls = []

    def flaky(fails: int):
        calls.append(time.monotonic())
        if len(calls) <= fails:
            raise MlflowException(
                "API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with "
                "exception ... [Errno 111] Connection refused'))"
            )
        return "logged"

    monkeypatch.setenv(RETRY_ENV, "3")
    assert call_store(uri, "logging metrics", flaky, 2) == "logged" and len(calls) == 3

    calls.clear()
    start = time.monotonic()
    with pytest.raises(TrackerUnavailable) as info:
        call_store(uri, "logging metrics", flaky, 10**6)
    assert 3 <= time.monotonic() - start < 3 + 2
    message = str(info.value)
    assert "alice:***@127.0.0.1:9 did not answer for 3 s" in message
    assert "logging metrics: Connection refused" in message
    assert secret not in message and "\n" not in message

    def missing():
        calls.append(1)
        raise MlflowException("no such run", error_code=RESOURCE_DOES_NOT_EXIST)

    calls.clear()
    with pytest.raises(MlflowException):  # a retry cannot fix it: at once
        call_store(uri, "reading the run", missing)
    assert calls == [1]

    monkeypatch.setenv(RETRY_ENV, "forever")
    with pytest.raises(DcganError, match=f"{RETRY_ENV}='forever' is not a number of seconds"):
        call_store(uri, "logging metrics", flaky, 0)


def test_a_run_whose_experiment_record_was_deleted_stops_in_one_line(tmp_path, monkeypatch):
    """Under `dvc exp run`, DVC's baseline ref must outlive the run: another workspace run
    that ends deletes it (DVC shares the refs), and the guard then stops before any output."""
    import subprocess

    from dcgan.pipeline.params_guard import (
        ExperimentLost,
        ParamsChanged,
        check_experiment_kept,
        check_params_unchanged,
    )

    params = tmp_path / "params.yaml"
    write_params(params, train=TINY_TRAIN)
    cfg = load_config("train", params)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    ref = ["update-ref", "refs/exps/exec/EXEC_BASELINE"]

    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    check_params_unchanged(cfg, params)  # `dvc repro`: no experiment, nothing to look for
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    subprocess.run([*git, *ref, "HEAD"], check=True)
    check_params_unchanged(cfg, params)  # the record is there
    subprocess.run([*git, *ref[:1], "-d", ref[1]], check=True)  # another run's cleanup
    with pytest.raises(ExperimentLost) as lost:
        check_params_unchanged(cfg, params)
    assert "another `dvc exp run` in this clone ended while this one ran" in str(lost.value)
    assert "dvc exp run --queue" in str(lost.value) and "\n" not in str(lost.value)
    with pytest.raises(ExperimentLost):
        check_experiment_kept(tmp_path)
    write_params(params, train={**TINY_TRAIN, "seed": 5})  # both: the params change first
    with pytest.raises(ParamsChanged, match=r"changed while training \(train\.seed 0 -> 5\)"):
        check_params_unchanged(cfg, params)


# Long enough for a second run to start while the first trains (the tiny run's grids are at
# 3 and 6: the first's grid at 2 says it trains).
LONGER = ["-S", "train.iterations=300", "-S", "train.sample_interval=2"]
LONGER += ["-S", "train.checkpoint_interval=100", "-S", "train.eval_interval=100"]
# The first run's DVC with its workspace clean-up (which deletes the refs every workspace run
# shares) 8 s late, as it can land on a slower machine; otherwise DVC as installed.
LATE_CLEANUP = """import sys, time
from dvc.repo.experiments.executor.local import WorkspaceExecutor
cleanup = WorkspaceExecutor.cleanup
def late(self, infofile=None):
    print("cleanup starts", flush=True)
    time.sleep(8)
    return cleanup(self, infofile)
WorkspaceExecutor.cleanup = late
from dvc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _exp_run(repo: Path, env: dict, seed: int, log: Path, dvc: list[str] | None = None):
    import subprocess

    cmd = [*(dvc or ["dvc"]), "exp", "run", "train", "-S", f"train.seed={seed}", *LONGER]
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, what: str, timeout: float = 600) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _train_lock(repo: Path) -> dict:
    import yaml

    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]


def _assert_the_lock_is_true(repo: Path) -> None:
    """What dvc.lock records for train is what the workspace holds, seed and bytes; and each
    seed is recorded by at most one finished MLflow run, the lock's by exactly one."""
    import hashlib
    import json

    from mlflow.tracking import MlflowClient

    lock = _train_lock(repo)
    seed = lock["params"]["params.yaml"]["train.seed"]
    training = repo / "models/training.json"
    if training.exists():  # DVC removes a stage's outputs before it runs it
        assert json.loads(training.read_text())["params"]["train.seed"] == seed
        (recorded,) = [o for o in lock["outs"] if o["path"] == "models/training.json"]
        assert recorded["md5"] == hashlib.md5(training.read_bytes()).hexdigest()
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    finished = [r.data.params["train.seed"] for r in runs if r.info.status == "FINISHED"]
    assert finished.count(str(seed)) == 1, finished
    assert len(finished) == len(set(finished)), finished


@pytest.mark.slow
def test_two_dvc_exp_runs_at_once_never_make_the_lock_lie(built_tiny, tmp_path):
    """On a copy of the built pipeline, as a user's clone after `dvc repro`: the second
    `dvc exp run -S train.seed=8` writes its seed into params.yaml before it meets DVC's lock,
    while the first trains with seed 7. The first fails saying so; whatever DVC records for
    train is the seed its model was trained with."""
    import yaml

    from .repos import copy_built

    repo, env = copy_built(built_tiny, tmp_path / "clone")
    train_before = _train_lock(repo)  # the built tiny run's
    first = _exp_run(repo, env, 7, tmp_path / "first.log")
    grid = repo / "reports/samples/iter_000002.png"
    _wait_for(lambda: grid.exists() or first.poll() is not None, "the first run's grid")
    assert first.poll() is None, "the first experiment ended before the second started"
    second = _exp_run(repo, env, 8, tmp_path / "second.log")
    second.wait(timeout=600)
    first.wait(timeout=900)
    output = (tmp_path / "first.log").read_text()

    seed_now = yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"]
    # DVC 3 writes the -S values before it takes the lock (seen in the issue and here).
    assert seed_now == 8
    assert first.returncode != 0
    # The first may read params.yaml while the second's `dvc exp run` has it at HEAD's:
    # DVC's _stash_exp stashes the workspace and resets it hard before it puts the -S values
    # in (dvc/repo/experiments/queue/base.py). Either way the first names the change: the
    # second's seed, or up to three of its own values going back to HEAD's, in the config's
    # order (LONGER's keys come before the seed).
    found = re.search(r"changed while training \((.+?)\); no model", output)
    assert found, output[-6000:]
    ours = {"seed": 7, **{k.split("=")[0][6:]: int(k.split("=")[1]) for k in LONGER[1::2]}}
    head = yaml.safe_load(run(["git", "show", "HEAD:params.yaml"], repo, env))["train"]
    back_to_head = [f"train.{k} {ours[k]!r} -> {head[k]!r}" for k in ours if ours[k] != head[k]]
    assert found.group(1) == "train.seed 7 -> 8" or set(found.group(1).split(", ")) <= set(
        back_to_head
    ), found.group(1)
    assert "dvc exp run --queue" in output
    second_output = (tmp_path / "second.log").read_text()
    if second.returncode != 0:
        # Refused by DVC's lock while the first still ran: "'data/prepared' is busy, it is
        # being blocked by (PID ...)"; or stopped by the guard below. Nothing recorded.
        assert _train_lock(repo) == train_before, second_output[-3000:]
        assert re.search(r"is busy|ended while this one ran", second_output), second_output
    else:
        assert _train_lock(repo)["params"]["params.yaml"]["train.seed"] == 8
    _assert_the_lock_is_true(repo)


@pytest.mark.slow
def test_a_run_whose_experiment_another_run_deleted_stops_with_the_cause(built_tiny, tmp_path):
    """The case behind a second `dvc exp run` that trained, wrote dvc.lock, then exited 255
    with "Failed to reproduce experiment: 'NoneType' object is not subscriptable": the first
    run, stopped by the params guard, releases DVC's lock; the second takes it and trains; the
    first's clean-up then deletes the refs/exps/exec refs the two share. The second now stops
    at its next interval with the cause, before writing any output."""
    import signal
    import sys

    import yaml

    from .repos import copy_built

    repo, env = copy_built(built_tiny, tmp_path / "clone")
    train_before = _train_lock(repo)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _exp_run(repo, env, 7, first_log, dvc=[sys.executable, "-c", LATE_CLEANUP])
    grid = repo / "reports/samples/iter_000002.png"
    _wait_for(lambda: grid.exists() or first.poll() is not None, "the first run's grid")
    assert first.poll() is None, "the first experiment ended before the second started"
    second = _exp_run(repo, env, 8, second_log)
    params = repo / "params.yaml"
    _wait_for(lambda: "seed: 8" in params.read_text(), "the second run's params")
    second.send_signal(signal.SIGSTOP)  # its params are in: the first stops, the lock frees
    try:
        _wait_for(lambda: "cleanup starts" in first_log.read_text(), "the first's clean-up")
    finally:
        second.send_signal(signal.SIGCONT)
    second.wait(timeout=600)
    first.wait(timeout=600)
    output = second_log.read_text()
    assert first.returncode != 0 and second.returncode != 0, output[-3000:]
    assert "Running stage 'train'" in output, output[-3000:]  # it did start training
    (line,) = [line for line in output.splitlines() if line.startswith("error: ")]
    assert "another `dvc exp run` in this clone ended while this one ran" in line
    assert "NoneType" not in output
    assert yaml.safe_load(params.read_text())["train"]["seed"] == 8
    assert _train_lock(repo) == train_before
    assert not (repo / "models/generator.keras").exists()  # removed by DVC, not rewritten
    _assert_the_lock_is_true(repo)
