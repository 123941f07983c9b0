"""The team's stack, end to end: a shared MLflow server (authentication on, PostgreSQL backend,
artifacts in S3), a DVC remote in S3 and a bare git repository; two machines train, a third
gets the champion without training. Every part is a real server on loopback (dcgan.stack)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from .conftest import experiment_names, link_web_deps, run, stage_command
from .repos import copy_built

pytestmark = pytest.mark.slow

MODEL = "dcgan-generator"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"}


@pytest.fixture(scope="module")
def stack(_early_stack):
    """The stack conftest started as the session began; taken down with this module."""
    from dcgan import stack as team

    s = _early_stack.result(timeout=600)
    try:
        yield s
    finally:
        team.down(s.folder)
    assert not s.folder.exists()  # down removes its state


def fails(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    """Run ``cmd``, check that it fails; returns its stderr and stdout."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stderr + proc.stdout


def output(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int) -> str:
    """Run ``cmd``, check that it succeeds; returns its stdout and stderr (what a user sees)."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed (exit {proc.returncode})"
    return proc.stdout + proc.stderr


def outputs_at_once(
    commands: list[tuple[list[str], Path, dict[str, str]]], timeout: int, secret: str
) -> list[str]:
    """Run ``(cmd, cwd, env)`` commands side by side, check that each succeeds; returns each
    one's stdout and stderr, as :func:`output` does. A failure shows the command's last lines
    with ``secret`` masked."""
    procs = [
        subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**env, "DVC_NO_ANALYTICS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for cmd, cwd, env in commands
    ]
    # One reader per process: a pipe that fills up would stall the other.
    with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
        texts = list(pool.map(lambda p: p.communicate(timeout=timeout)[0], procs))
    for (cmd, _, _), proc, text in zip(commands, procs, texts, strict=True):
        tail = text.replace(secret, "***")[-3000:]  # masked first: no cut secret survives
        assert proc.returncode == 0, f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}"
    return texts


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^(error|ERROR)\b", line)]


def training_runs(client) -> list:
    experiment = client.get_experiment_by_name("dcgan")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_two_machines_train_a_third_gets_the_champion_without_training(stack, built_tiny, tmp_path):
    from mlflow.tracking import MlflowClient

    from dcgan import stack as team
    from dcgan.stack import configure_dvc_remote

    secret = stack.secrets["mlflow_admin"]
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)

    # Machine A: the project with its tiny pipeline built (the session's), committed and pushed
    # to the shared git remote; credentials in MLflow's variables.
    a, base_env = copy_built(built_tiny, tmp_path / "a")
    base_env = {k: v for k, v in base_env.items() if k not in S3_CREDENTIALS}
    run(["git", "add", "-A"], a, base_env)
    run(["git", "commit", "-q", "-m", "built"], a, base_env)
    run(["git", "remote", "add", "origin", str(origin)], a, base_env)
    run(["git", "push", "-q", "origin", "main"], a, base_env)
    env_a = {**base_env, **stack.client_env()}
    # Machine B: a clone; its password inside the tracking URI, which nothing may show.
    b = tmp_path / "b"
    run(["git", "clone", "-q", str(origin), str(b)], tmp_path, base_env)
    link_web_deps(b)
    env_b = {
        **base_env,
        "MLFLOW_TRACKING_URI": stack.tracking_uri.replace("http://", f"http://admin:{secret}@"),
    }
    for clone in (a, b):
        configure_dvc_remote(stack, clone)
    assert not S3_CREDENTIALS & {*env_a, *env_b}  # the S3 keys are in .dvc/config.local
    # B gets A's built outputs through the S3 remote: each machine's experiment then runs only
    # the stages its train.seed changes (prepare and the classifier are up to date).
    run(["dvc", "push"], a, env_a, timeout=600)
    run(["dvc", "pull"], b, env_b, timeout=600)

    # The two machines train at once, as a team's do: into one server, each in its clone.
    machines = ((a, env_a, 1), (b, env_b, 2))
    logs = outputs_at_once(
        [
            (["dvc", "exp", "run", "-S", f"train.seed={seed}", "-n", f"seed{seed}"], clone, env)
            for clone, env, seed in machines
        ],
        timeout=1200,
        secret=secret,
    )
    for (clone, env, seed), log in zip(machines, logs, strict=True):
        run(["dvc", "exp", "push", "origin", f"seed{seed}"], clone, env, timeout=600)
        for stage in ("prepare", "classifier"):  # from the pushed and pulled outputs
            assert f"Stage '{stage}' didn't change, skipping" in log, log[-3000:]
    logs = dict(zip((1, 2), logs, strict=True))
    # (Checked as booleans: a failing assert must not print the secret either.)
    leaked = secret in logs[2]
    assert not leaked, "the password is in B's dvc exp run output"
    assert "View run" not in logs[2] and "/#/experiments/" in logs[2]  # the link, no password
    for path in b.rglob("*"):  # reports, dvc.lock, training.json, MLflow's local files...
        if path.is_file() and ".git" not in path.parts and path.name != "config.local":
            leaked = secret.encode() in path.read_bytes()
            assert not leaked, f"the password is in {path}"

    client = MlflowClient(tracking_uri=stack.tracking_uri)
    os.environ.update(stack.client_env())  # the test's own client: restored below
    try:
        runs = training_runs(client)
        assert {r.data.tags.get("dvc_exp_name") for r in runs} >= {"seed1", "seed2"}
        for r in runs:  # the run record never holds the password either
            leaked = secret in json.dumps([r.data.tags, r.data.params])
            assert not leaked, f"the password is in run {r.info.run_id}'s tags or params"

        import psycopg  # the runs are in the stack's PostgreSQL, not in some SQLite file

        with psycopg.connect(
            host="127.0.0.1",
            port=stack.ports["postgres"],
            user="mlflow",
            password=stack.secrets["postgres"],
            dbname="mlflow",
        ) as conn:
            stored = {row[0] for row in conn.execute("SELECT run_uuid FROM runs")}
        assert {r.info.run_id for r in runs} <= stored

        # The artifacts are in the bucket, not on the server's disk.
        keys = [
            o["Key"] for o in stack.s3_client().list_objects_v2(Bucket="mlflow").get("Contents", [])
        ]
        assert any(k.endswith("model.onnx") for k in keys), keys[:20]
        assert stack.s3_client().list_objects_v2(Bucket="dvc").get("KeyCount", 0) > 0
        before = len(training_runs(client))

        # Machine C: a clone with no S3 key in its environment; promote on the server.
        c = tmp_path / "c"
        run(["git", "clone", "-q", str(origin), str(c)], tmp_path, base_env)
        configure_dvc_remote(stack, c)
        env_c = {**base_env, **stack.client_env()}
        run(["dcgan", "promote"], c, env_c)
        champion = client.get_model_version_by_alias(MODEL, "champion")
        best = client.get_run(champion.run_id).data.tags["dvc_exp_name"]
        fcd = {
            v.version: client.get_run(v.run_id).data.metrics["fcd"]
            for v in client.search_model_versions(f"name='{MODEL}'")
        }
        assert fcd[champion.version] == min(fcd.values())

        # ... and gets that experiment's outputs without training.
        run(["dvc", "exp", "pull", "origin", best], c, env_c, timeout=600)
        run(["dvc", "exp", "apply", best], c, env_c)
        run(["dvc", "pull"], c, env_c, timeout=600)
        assert "Data and pipelines are up to date" in run(["dvc", "status"], c, env_c)
        trained_in = a if best == "seed1" else b
        for name in ("models/generator.onnx", "models/generator.keras", "reports/metrics.json"):
            assert (c / name).read_bytes() == (trained_in / name).read_bytes(), name
        assert len(training_runs(client)) == before  # nothing trained

        # The champion through the server: its ONNX bytes are the pulled generator.onnx, and
        # its pyfunc (what `mlflow models serve` loads) generates.
        code = (
            "import sys, mlflow, numpy as np; from pathlib import Path\n"
            f"uri = 'models:/{MODEL}@champion'\n"
            "p = mlflow.artifacts.download_artifacts(uri, dst_path=sys.argv[1])\n"
            "images = mlflow.pyfunc.load_model(uri).predict(np.zeros((2, 100), np.float32))\n"
            "assert images['image'].shape == (2, 28, 28, 1), images['image'].shape\n"
            "print(next(Path(p).rglob('*.onnx')))\n"
        )
        got = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "champion")],
            env=env_c,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert got.returncode == 0, got.stderr[-2000:]
        assert Path(got.stdout.strip()).read_bytes() == (c / "models/generator.onnx").read_bytes()
        assert champion.run_id in run(["dcgan", "runs", "models/generator.onnx"], c, env_c)
    finally:
        for name in stack.client_env():
            os.environ.pop(name, None)

    # Refusals, one line each: no MLflow credentials, a wrong password, a wrong S3 key.
    train = stage_command("train", Path("."))
    no_user = {k: v for k, v in env_c.items() if not k.startswith("MLFLOW_TRACKING_")}
    no_user["MLFLOW_TRACKING_URI"] = stack.tracking_uri
    for env in (no_user, {**env_c, "MLFLOW_TRACKING_PASSWORD": "wrong"}):
        text = fails(train, c, env)
        assert error_lines(text) == [text.strip().splitlines()[-1]]
        assert "refused the credentials (HTTP 401)" in text and "Traceback" not in text
        leaked = secret in text
        assert not leaked, "the password is in the refusal"

    extra = c / "extra.bin"
    extra.write_bytes(os.urandom(1 << 20))
    run(["dvc", "add", "extra.bin"], c, env_c)
    md5 = yaml.safe_load((c / "extra.bin.dvc").read_text())["outs"][0]["md5"]
    run(["dvc", "remote", "modify", "--local", "team", "secret_access_key", "wrong"], c, env_c)
    text = fails(["dvc", "push"], c, env_c)
    assert error_lines(text), text[-2000:]
    assert "403" in text or "Forbidden" in text or "SignatureDoesNotMatch" in text, text[-2000:]
    configure_dvc_remote(stack, c)

    # S3 down when pushing: an error, nothing lost locally, and the push completes later.
    team.stop_service(stack, "s3")
    try:
        start = time.monotonic()
        text = fails(["dvc", "push"], c, env_c)
        down_seconds = time.monotonic() - start
        assert error_lines(text), text[-2000:]
    finally:
        again = team.up(stack.folder)  # `up` on a stack with a part down: restarts that part
    assert team.states(again) == {"postgres": "running", "s3": "running", "mlflow": "running"}
    assert (again.ports, again.secrets) == (stack.ports, stack.secrets)
    print(f"dvc push with S3 down failed in {down_seconds:.0f} s")
    assert (c / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).is_file()
    assert extra.stat().st_size == 1 << 20
    run(["dvc", "push"], c, env_c, timeout=600)
    key = f"store/files/md5/{md5[:2]}/{md5[2:]}"
    assert stack.s3_client().head_object(Bucket="dvc", Key=key)["ContentLength"] == 1 << 20


def test_a_sweep_on_the_stack_pushes_each_trial_nests_its_run_and_reports_the_one_that_failed(
    stack, built_tiny, tmp_path, monkeypatch
):
    """`dcgan sweep` on one machine against the team's stack, as docs/team.md sets it up: the
    committed DVC remote is the stack's bucket, the S3 keys and MLflow's login are in the
    environment (`./run stack env --s3`). Two trials on the Ray cluster the sweep starts here,
    one at a time: one trains, one asks for a batch larger than the data and fails in its
    train stage. A third clone gets the first one's generator from the remotes alone. (Runs
    after the two machines' test: its trial registers a generator, which would take part in
    that test's champion.)"""
    import ray
    from mlflow.tracking import MlflowClient

    from .test_sweep import generator_in_a_third_clone, pushed_copy

    work, bare, env = pushed_copy(built_tiny, tmp_path, "s3://dvc/sweep", stack.s3_endpoint)
    env = {k: v for k, v in env.items() if k not in S3_CREDENTIALS and not k.startswith("MLFLOW_")}
    exported = subprocess.run(
        [sys.executable, "-m", "dcgan.cli", "stack", "env", "--s3", "--dir", str(stack.folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in exported.stdout.splitlines()
    )
    assert exports == {**stack.client_env(), **stack.s3_env()}  # no shell quoting needed here
    env.update(exports)

    sweep = subprocess.run(
        ["dcgan", "sweep", "-S", "train.batch_size=16,100000", "-n", "s"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out, err = sweep.stdout, sweep.stderr
    secret = stack.secrets["mlflow_admin"]
    leaked = secret in out + err
    assert not leaked, "the sweep printed the MLflow password"
    assert sweep.returncode == 2, (out + err)[-4000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 trials failed (s-2: params.yaml: "), last
    assert "lower train.batch_size); the table above has each cause" in last
    assert out.index("s-2  train.batch_size=100000") < out.index("| trial |")  # grid first
    rows = [line for line in out.splitlines() if line.startswith("| s-")]
    assert [r.split("|")[1].strip() for r in rows] == ["s-1", "s-2"]
    assert "| failed: params.yaml: " in rows[1] and "lower train.batch_size |" in rows[1]

    assert experiment_names(bare, env) == ["s-1"]
    assert not list(Path(tempfile.gettempdir()).glob("dcgan-s-*"))  # clones removed

    for name, value in stack.client_env().items():  # the test's own client: restored after
        monkeypatch.setenv(name, value)
    client = MlflowClient(tracking_uri=stack.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    (parent,) = [
        r for r in runs if r.data.tags.get("dcgan.sweep") == "s" and r.info.run_name == "s"
    ]
    assert parent.info.status == "FAILED"  # a trial failed
    assert json.loads(parent.data.tags["dcgan.sweep.grid"]) == [
        ["train.batch_size=16"],
        ["train.batch_size=100000"],
    ]
    table = client.download_artifacts(parent.info.run_id, "sweep.md", str(tmp_path))
    assert rows[0] in Path(table).read_text()
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [(c.info.run_name, c.info.status) for c in children] == [("s-1", "FINISHED")]
    assert children[0].data.tags["ray.version"] == ray.__version__
    # The table went through the server into the stack's bucket, the trial's outputs into the
    # DVC remote's prefix there.
    s3 = stack.s3_client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", [])]
    assert any(k.endswith(f"{parent.info.run_id}/artifacts/sweep.md") for k in keys), keys[:20]
    assert s3.list_objects_v2(Bucket="dvc", Prefix="sweep/").get("KeyCount", 0) > 0

    onnx = generator_in_a_third_clone(bare, "s-1", tmp_path / "third", env)
    assert onnx == children[0].data.tags["dcgan.onnx_sha256"]


def test_up_status_and_down_print_no_secret_and_env_is_the_one_that_does(tmp_path):
    """What `./run stack up|status|down` print lands in terminal scrollback and CI logs: no
    admin password, no S3 key, no server-side secret. `env` prints the password, when asked."""
    folder = tmp_path / ".stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}

    def stack_cli(action: str, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dcgan.cli", "stack", action, *flags, "--dir", str(folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )

    up = stack_cli("up")
    shown = {"up": up}
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        secrets = json.loads((folder / "stack.json").read_text())["secrets"]
        assert {"mlflow_admin", "s3_access_key", "s3_secret_key"} <= set(secrets)
        assert 'eval "$(./run stack env)"' in up.stderr  # how to get the login
        shown["status"] = stack_cli("status")
        assert shown["status"].returncode == 0, shown["status"].stderr[-2000:]
        exported = stack_cli("env")
        assert f"MLFLOW_TRACKING_PASSWORD={secrets['mlflow_admin']}" in exported.stdout
        assert "AWS_" not in exported.stdout  # MLflow's clients need no S3 key: the server proxies
        with_s3 = stack_cli("env", "--s3")
        assert with_s3.stdout.startswith(exported.stdout)
        assert with_s3.stdout[len(exported.stdout) :] == (
            f"export AWS_ACCESS_KEY_ID={secrets['s3_access_key']}\n"
            f"export AWS_SECRET_ACCESS_KEY={secrets['s3_secret_key']}\n"
        )
        refused = stack_cli("status", "--s3")
        assert refused.returncode == 2 and refused.stdout == "", refused.stdout
        assert refused.stderr.strip().splitlines() == [
            "error: --s3 goes with `stack env` only, not with `stack status`"
        ]
    finally:
        shown["down"] = stack_cli("down")
    assert shown["down"].returncode == 0 and not folder.exists()
    for action, proc in shown.items():
        for name, secret in secrets.items():
            leaked = secret in proc.stdout + proc.stderr
            assert not leaked, f"`stack {action}` prints the {name} secret"
