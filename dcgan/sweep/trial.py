"""One trial, as a Ray worker runs it: a fresh clone of the git remote at the sweep's commit,
in a temporary folder removed afterwards; the stages a trial does not change pulled from the
DVC remote; `dvc exp run`; `dvc exp push`; its result back to the driver.

It never touches the driver's workspace. MLflow's tracking URI and every credential come from
the worker's own environment, never from the task's arguments (Ray's dashboard shows those)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dcgan.stack import supervise

# Pulled, not rebuilt: a sweep's `-S train.*` leaves them as the commit's dvc.lock has them.
FIXED_STAGES = ("prepare", "classifier")
# Ray sets OMP_NUM_THREADS in a task's process to the CPUs the task asked for, 1 for none
# (ray._private.utils.set_omp_num_threads_if_unset): dropped, so that a trial's TensorFlow
# takes its node's cores, as `dvc exp run` on that machine would.
RAY_THREAD_LIMITS = ("OMP_NUM_THREADS",)


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """What the driver sends: no secret (the dashboard shows task arguments)."""

    name: str
    overrides: tuple[str, ...]
    git_url: str
    commit: str
    dvc_remote: str | None  # a remote named in the commit's .dvc/config; None: its default
    sweep: str
    parent_run_id: str


# DVC's "failed to run: <the stage's whole command line>, exited with N": the row keeps the
# stage's name (in DVC's "failed to reproduce 'train'") and the status, which a cut would lose.
COMMAND_FAILED = re.compile(r"failed to run: .*, exited with (-?\d+)$")


class TrialFailed(Exception):
    """The trial's own failure (a diverged run, a refused value): reported, not retried."""


def run(spec: TrialSpec) -> dict:
    """Run the trial; returns its result (see ``result``), ``status`` "failed" with a one-line
    ``cause`` when the trial itself failed."""
    from dcgan.tracking import sweeps
    from dcgan.tracking.store import tracking_uri

    start = time.monotonic()
    _cancellable()
    node = _node()
    with tempfile.TemporaryDirectory(prefix=f"dcgan-{spec.name}-") as folder:
        repo = Path(folder) / "repo"
        log = Path(folder) / "trial.log"
        try:
            # An attempt that died with its node left its run RUNNING: this one replaces it.
            sweeps.close_abandoned_attempts(tracking_uri(), spec.name)
            _step(["git", "clone", "--quiet", spec.git_url, str(repo)], Path(folder), log)
            _step(["git", "checkout", "--quiet", "--detach", spec.commit], repo, log)
            remote = ["-r", spec.dvc_remote] if spec.dvc_remote else []
            _step(["dvc", "pull", *remote, *FIXED_STAGES], repo, log)
            flags = [w for o in spec.overrides for w in ("-S", o)]
            _link_web_deps(repo)
            _step(["dvc", "exp", "run", "-n", spec.name, *flags], repo, log)
            _step(["dvc", "exp", "push", *remote, "origin", spec.name], repo, log)
            found = result(spec, repo, node)
        except TrialFailed as exc:
            found = {"name": spec.name, "status": "failed", "cause": str(exc), **node}
    found["overrides"] = list(spec.overrides)
    found["seconds"] = round(time.monotonic() - start, 1)
    return found


def _cancellable() -> None:
    """Let Ctrl-C on the driver reach this task. Ray cancels a running task by raising
    KeyboardInterrupt in it through ``_thread.interrupt_main``, which does nothing while SIGINT
    is ignored; a node started by `ray start` from a script's background job (`cmd &`, nohup)
    has it ignored, and its workers inherit that. The trial would then run on until the
    driver's grace ran out and Ray killed its worker, leaving its clone on the disk."""
    unhandled = signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL)
    if unhandled and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _link_web_deps(repo: Path) -> None:
    """The site stage's npm packages, which git ignores: linked from the checkout this worker
    runs the project from (set up by ./run), so the experiment pushed is the whole pipeline
    and `dvc pull` after `dvc exp apply` finds every output."""
    import dcgan

    installed = Path(dcgan.__file__).resolve().parents[1] / "web" / "node_modules"
    if installed.is_dir():
        (repo / "web" / "node_modules").symlink_to(installed)


def _node() -> dict:
    import ray

    context = ray.get_runtime_context()
    return {"node_id": context.get_node_id(), "node": socket.gethostname()}


def environment(worker: bool = False) -> dict[str, str]:
    """This process's environment for DVC and the stages it runs: their ``dvc`` and ``python``
    are this interpreter's (a worker's PATH may not have its environment activated); in a Ray
    worker, without Ray's thread limit."""
    env = {k: v for k, v in os.environ.items() if not (worker and k in RAY_THREAD_LIMITS)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _step(command: list[str], cwd: Path, log: Path) -> None:
    """Run one command in its own process group, its output appended to ``log``. A cancelled
    task (Ctrl-C on the driver: KeyboardInterrupt here) stops the whole group first."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=environment(worker=True),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = _wait(proc)
        except BaseException:
            supervise.stop(supervise.Proc.of(proc.pid), timeout=20)
            raise
    if code != 0:
        cause = _cause(log)
        if cause.startswith("error: "):  # a stage's own one line says it all
            raise TrialFailed(cause.removeprefix("error: "))
        raise TrialFailed(f"{command[0]} {command[1]} exited {code}: {cause}")


def _wait(proc: subprocess.Popen) -> int:
    """Wait for ``proc``, back in Python every second: Ray's cancel raises KeyboardInterrupt
    only when the task runs Python, never inside a blocking wait."""
    while True:
        try:
            return proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue


def _cause(log: Path) -> str:
    """The one-line error of our stages (``error: ...``) if one printed it, else DVC's last
    ERROR line, else the log's last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("error: ")]
    theirs = [
        COMMAND_FAILED.sub(r"its command exited with \1", line)
        for line in lines
        if line.startswith("ERROR")
    ]
    return ((ours or theirs or lines or ["no output"])[-1])[:300]


def result(spec: TrialSpec, repo: Path, node: dict) -> dict:
    """The evaluate stage's metrics, the lowest in-training FCD (files as dvc.yaml names them),
    and the trial's MLflow run, nested under the sweep's."""
    from dcgan.layout import stage_args
    from dcgan.tracking import sweeps
    from dcgan.tracking.store import tracking_uri

    metrics = json.loads((repo / stage_args("evaluate", repo)["metrics"]).read_text())
    scored = json.loads((repo / stage_args("train", repo)["quality"]).read_text())
    best = min(scored, key=lambda row: row["fcd"]) if scored else None
    import ray

    tags = {"dcgan.sweep": spec.sweep, "ray.version": ray.__version__}
    run_id = sweeps.adopt(tracking_uri(), spec.name, spec.parent_run_id, tags)
    if run_id is None:
        raise TrialFailed(f"no FINISHED MLflow run is tagged dvc_exp_name={spec.name}")
    return {
        "name": spec.name,
        "status": "done",
        "fcd": metrics.get("fcd"),
        "mnist_score": metrics.get("mnist_score"),
        "best_training_fcd": best and best["fcd"],
        "best_iteration": best and best["iteration"],
        "run_id": run_id,
        **node,
    }
