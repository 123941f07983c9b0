"""Shared fixtures: tiny configs and data that the tests make themselves (all offline)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from dcgan.stack import mlflow_server as mlflow_launcher
from dcgan.stack import supervise
from dcgan.stack.supervise import Proc

from .repos import BuiltPipeline
from .scheduling import (  # noqa: F401 (pytest finds hooks by name in a conftest)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_xdist_make_scheduler,
)

ROOT = Path(__file__).resolve().parents[1]

# Tests never touch the repository's own MLflow store, nor the network beyond the package
# registries that the lock check (test_environment) asks, as ./run test does.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _checkout_store() -> dict[str, int]:
    """The checkout's own MLflow store (mlflow.db*, mlruns/), each path with its mtime."""
    paths = [*ROOT.glob("mlflow.db*"), *ROOT.glob("mlruns"), *ROOT.glob("mlruns/**/*")]
    return {str(p.relative_to(ROOT)): p.stat().st_mtime_ns for p in paths}


@pytest.fixture(scope="session", autouse=True)
def _session_store_and_clean_checkout(tmp_path_factory):
    """A store for session- and module-scoped fixtures, which run before any function-scoped
    one (and so before ``_isolated_mlflow``); at the end, fail the session if any test made or
    changed a mlflow.db or mlruns/ in the checkout (a developer's own store is left as it was)."""
    before = _checkout_store()
    folder = tmp_path_factory.mktemp("mlflow-session")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.setenv("DCGAN_CACHE_DIR", str(folder / "cache"))
        yield
    after = _checkout_store()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into the checkout's MLflow store: {changed[:10]}"


@pytest.fixture(autouse=True)
def _early_starts(request):
    """The tiny build and test_team's stack start with the first slow test a process runs
    (under xdist, the worker that runs them all), beside the tests before their users; before
    ``_isolated_mlflow`` (defined after it), so in the session's store and cache folders."""
    if request.node.get_closest_marker("slow") is not None:
        request.getfixturevalue("_tiny_build")
        request.getfixturevalue("_early_stack")


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory, monkeypatch):
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    # train.precision: auto caches its measurement per machine; never in the developer's home.
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(store.parent / "cache"))
    # `dcgan`'s logging set-up sets MLFLOW_LOGGING_LEVEL in its process: here, for one test only
    # (set, then removed if it was unset, so that monkeypatch puts back what was there).
    level = os.environ.get("MLFLOW_LOGGING_LEVEL")
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", level or "")
    if level is None:
        monkeypatch.delenv("MLFLOW_LOGGING_LEVEL")


@pytest.fixture(scope="session")
def repo_params():
    from dcgan.config import load_all

    return load_all(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def tiny_train_cfg(repo_params):
    return dataclasses.replace(
        repo_params["train"],
        iterations=4,
        batch_size=8,
        sample_interval=2,
        eval_interval=0,
        experiment="test",
    )


@pytest.fixture(scope="session")
def tiny_images():
    """32 images in [-1, 1], shaped like prepared data."""
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)


def stage_paths(stage: str, root: Path) -> dict[str, Path]:
    """The paths a stage's cmd in dvc.yaml names, under ``root`` (``--class-shares`` ->
    ``class_shares``): the tests use the pipeline's own file names, never their own."""
    from dcgan.layout import stage_args

    return {k: root / v for k, v in stage_args(stage, ROOT).items()}


def paths_class(stage: str) -> type:
    """The stage's paths dataclass in dcgan.pipeline.paths (``train`` -> ``TrainPaths``)."""
    from dcgan.pipeline import paths

    return getattr(paths, f"{stage.capitalize()}Paths")


def paths_of(stage: str, root: Path, **given: Path | str | None):
    """The stage's paths (dcgan.pipeline.paths): every output it must write as dvc.yaml names
    it, under ``root``, and what it reads, or any output replaced, by keyword."""
    from dcgan.pipeline import paths

    cls = paths_class(stage)
    named = stage_paths(stage, root)
    outputs = {
        f.name: named[f.name]
        for f in dataclasses.fields(cls)
        if f.metadata["kind"] == paths.WRITTEN and f.default is dataclasses.MISSING
    }
    return cls(**{**outputs, **given})


def stage_command(stage: str, root: Path, **replace: str | Path) -> list[str]:
    """The stage's script with dvc.yaml's arguments, every path under ``root``, and some
    replaced by keyword (``params=...``)."""
    args = stage_paths(stage, root)
    if "lock" in args:  # the environment these tests run in
        args["lock"] = ROOT / "uv.lock"
    args.update(replace)
    flags = [[f"--{k.replace('_', '-')}", str(v)] for k, v in args.items()]
    script = ROOT / "stages" / f"{stage}.py"
    return [sys.executable, str(script), *(w for pair in flags for w in pair)]


def run_without_tensorflow(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A stage's command (``[python, script, args...]``) with every import of TensorFlow made
    to fail: what the stage refuses before TensorFlow loads, it refuses here in one line."""
    guard = (
        "import runpy, sys; sys.modules['tensorflow'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.run(
        [command[0], "-c", guard, *command[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def write_params(path: Path, **overrides: dict) -> Path:
    """Write a params.yaml: the repository's, with ``{block: {key: value}}`` overrides."""
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block, values in overrides.items():
        params[block].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_docs_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run a report script under docs/ (e.g. "sweep/report.py") as a user does, from the
    repository's root with the package importable; its output is returned, not checked."""
    return subprocess.run(
        [sys.executable, str(ROOT / "docs" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    """Run a command; on failure show its output in the assertion."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def experiment_names(repo: Path, env: dict[str, str]) -> list[str]:
    """The DVC experiments in ``repo``'s git refs (refs/exps/<baseline>/<name>), by name."""
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo, env)
    return [ref.rsplit("/", 1)[-1] for ref in refs.split()]


# The whole pipeline in a few minutes: synthetic digits, 6 iterations, one epoch.
TINY = {
    "prepare": {"source": "sample"},
    "train": {
        "iterations": 6,
        "batch_size": 16,
        "sample_interval": 3,
        "checkpoint_interval": 3,
        "eval_interval": 3,
        "eval_samples": 200,
        # The averaged generator kept at its lowest FCD is what every later stage gets, and
        # what the soak test's kills must resume to.
        "ema_decay": 0.9,
        "keep": "best",
    },
    "classifier": {"epochs": 1},
    "evaluate": {"num_samples": 200},
}


def link_web_deps(dest: Path) -> None:
    """npm's install for the site stage (git-ignored, so no copy or clone has it), linked."""
    link = dest / "web/node_modules"
    if (ROOT / "web/node_modules").is_dir() and not (link.exists() or link.is_symlink()):
        link.symlink_to(ROOT / "web/node_modules")


def make_repo(dest: Path, overrides: dict) -> tuple[Path, dict[str, str]]:
    """A git repository in ``dest`` with the files git would clone (tracked, and untracked but
    not ignored), params overridden, committed. Returns it and an environment to run DVC in."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    link_web_deps(dest)
    write_params(dest / "params.yaml", **overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    run(["git", "init", "-q", "-b", "main"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-q", "-m", "tiny"], dest, env)
    return dest, env


class TinyBuild:
    """`dvc repro` of the tiny pipeline (``TINY``) in a git copy of the repository, run in
    the background from the session's start: it is mostly one core of Python imports, so the
    tests that come before its first user run beside it instead of waiting for it after."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = folder / "repro.log"
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> TinyBuild:
        (self.folder / "repo").mkdir()
        self.repo, self.env = make_repo(self.folder / "repo", TINY)
        start = time.monotonic()
        with self.log.open("w") as log:  # a file, never a pipe nobody reads while it runs
            self.proc = subprocess.Popen(
                ["dvc", "repro"],
                cwd=self.repo,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped as a group if the session ends first
            )

        def timed() -> None:  # the build's own times, not those of whoever waits for it
            try:  # wait4: the CPU time of dvc and of every stage process it waited for
                _, status, usage = os.wait4(self.proc.pid, 0)
            except ChildProcessError:  # stop() reaped it first
                return
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.seconds = time.monotonic() - start
            self.cpu_seconds = usage.ru_utime + usage.ru_stime

        self.waiter = threading.Thread(target=timed, daemon=True)
        self.waiter.start()
        return self

    def result(self, timeout: float = 1800) -> BuiltPipeline:
        if self.proc is None:
            self.start()
        self.waiter.join(timeout)
        if self.seconds is None:
            self.stop()
            pytest.fail(f"dvc repro of the tiny pipeline took over {timeout:.0f} s")
        output = self.log.read_text()
        assert self.proc.returncode == 0, f"dvc repro of the tiny pipeline failed:\n{output}"
        return BuiltPipeline(self.repo, self.env, self.seconds, self.cpu_seconds)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)


@pytest.fixture(scope="session")
def _tiny_build(request, tmp_path_factory, _session_store_and_clean_checkout):
    """The tiny build, started when a selected test needs ``built_tiny`` (in the store and
    cache folders the session set), and stopped if the session ends before it."""
    build = TinyBuild(tmp_path_factory.mktemp("built"))
    if any("built_tiny" in item.fixturenames for item in request.session.items):
        build.start()
    yield build
    build.stop()


@pytest.fixture(scope="session")
def _early_stack(request, tmp_path_factory):
    """The team's stack (dcgan.stack) for test_team's ``stack``, started in a thread when a
    selected test needs it: its ~12 s are spent waiting on PostgreSQL, SeaweedFS and the
    mlflow server, beside the tests before it. Removed at the end if the module has not
    removed it."""
    from dcgan import stack as team

    if not any("stack" in item.fixturenames for item in request.session.items):
        yield None
        return
    folder = tmp_path_factory.mktemp("team") / ".stack"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = pool.submit(team.up, folder)
        try:
            yield started
        finally:
            concurrent.futures.wait([started])
            team.down(folder)  # nothing to do once the module took it down


@pytest.fixture(scope="session")
def built_tiny(_tiny_build) -> BuiltPipeline:
    """The tiny pipeline (``TINY``), built by `dvc repro` once per session in a git copy of
    the repository. Never changed by a test: take a copy (``copy_built``)."""
    return _tiny_build.result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(folder: Path, backend_uri: str, port: int) -> Proc:
    """`mlflow server` on 127.0.0.1:``port`` over ``backend_uri``, artifacts in
    ``folder/artifacts``, by the stack's launcher (in a process group of its own); returns
    once /health answers. Stop it with ``stop_server``."""
    return mlflow_launcher.start(folder, backend_uri, str(folder / "artifacts"), port)


def stop_server(proc: Proc, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the server's process group and wait for it (SIGKILL after 30 s)."""
    supervise.stop(proc, sig)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process group ``proc`` leads and wait for it (SIGKILL after 30 s)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@contextmanager
def mlflow_server(folder: Path, backend_uri: str) -> Iterator[str]:
    """`mlflow server` on a free loopback port over ``backend_uri``; yields its URL."""
    port = free_port()
    proc = start_mlflow_server(folder, backend_uri, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def wait_until_serving(
    url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float
) -> None:
    """Poll ``url`` until it answers; fail the test with the tail of ``log`` if ``proc``
    exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def run_python(code: str, *args: str, timeout: float = 600) -> str:
    """Run ``code`` in a fresh Python process (so a fresh TensorFlow) and return its stdout,
    after checking it exited 0."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
