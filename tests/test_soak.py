"""Soak: the tiny pipeline under random SIGKILLs, each followed by a rerun, ends exactly where an
uninterrupted run ends, with a true MLflow record and no debris."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import TINY, make_repo, run

pytestmark = pytest.mark.slow

# Kills at random moments (up to half an uninterrupted run's CPU time: its wall time depends on
# what shared the cores while the session built it), each followed by a rerun that
# resumes where the last one stopped, so successive kills move down the pipeline: dvc itself,
# prepare, train, the later stages, and once a run has finished, a `dvc repro -f` that the
# next run restores from the run cache. The test prints which stage each kill hit.
#
# DVC 3.67 writes dvc.lock in place (open "w+", then dump), so a kill inside that write leaves
# it torn, and the next `dvc repro` stops with "'./dvc.lock' validation failed" (a CI run hit
# it). The documented recovery, docs/reliability.md, is `git checkout dvc.lock` and a rerun:
# finished stages come back from the run cache. The test takes that path when a kill tears the
# lock, and once on purpose before its last run, so the recovery is proven on every run.
KILLS = int(os.environ.get("DCGAN_SOAK_KILLS", "4"))
# Names our atomic writers and DVC's experiments leave behind when killed mid-write.
DEBRIS = re.compile(r"^\.(keras-.*|.+\.tmp(\..+)?)$")


def debris(repo: Path) -> list[Path]:
    folders = [repo / name for name in ("data", "models", "reports", "checkpoints")]
    return sorted(
        path
        for folder in folders
        if folder.exists()
        for path in folder.rglob("*")
        if DEBRIS.match(path.name)
    )


def torn(output: str) -> bool:
    """Whether DVC refused to run because dvc.lock is torn (unparsable or off its schema)."""
    return "dvc.lock' validation failed" in output or "unable to read: 'dvc.lock'" in output


def tear_lock(repo: Path) -> None:
    """Leave dvc.lock as a kill inside DVC's write of it would: cut after a stage's name."""
    text = (repo / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text(text[: text.index("\n  train:\n") + len("\n  train:\n")])


def outputs(repo: Path) -> dict[str, object]:
    """dvc.lock's stages (every dep, param and output hash) and the generator's bytes."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {"stages": lock["stages"], "onnx": (repo / "models/generator.onnx").read_bytes()}


def test_random_sigkills_then_reruns_end_as_an_uninterrupted_run(built_tiny, tmp_path):
    # The uninterrupted run is the session's built tiny pipeline, never killed.
    reference, uninterrupted = built_tiny.repo, built_tiny.cpu_seconds
    repo, env = make_repo(tmp_path / "soak", TINY)
    rng = random.Random(int(os.environ.get("DCGAN_SOAK_SEED", "0")))
    hit: list[str] = []
    command = ["dvc", "repro"]
    while len(hit) < KILLS:
        proc = subprocess.Popen(
            command,
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # dvc and the stage it runs die together
        )
        try:
            output, _ = proc.communicate(timeout=rng.uniform(1, uninterrupted / 2))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            stages = re.findall(r"Running stage '(\w+)'", output)
            hit.append(stages[-1] if stages else "dvc")
            command = ["dvc", "repro"]
            continue
        if proc.returncode != 0 and torn(output):
            hit[-1] += " (tore dvc.lock)"
            run(["git", "checkout", "--", "dvc.lock"], repo, env)
            continue
        assert proc.returncode == 0, output[-3000:]
        command = ["dvc", "repro", "-f"]  # done before the last kill: go round again
    tear_lock(repo)
    refused = subprocess.run(
        ["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode != 0 and torn(refused.stdout + refused.stderr), refused
    run(["git", "checkout", "--", "dvc.lock"], repo, env)
    run(["dvc", "repro"], repo, env, timeout=1800)
    print(
        f"SIGKILLs: {len(hit)} ({', '.join(hit)}); uninterrupted run {uninterrupted:.0f} CPU s, "
        f"{built_tiny.seconds:.0f} s"
    )

    assert outputs(repo) == outputs(reference)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo, env)
    assert debris(repo) == []

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dcgan")
    deadline = time.monotonic() + 60  # a killed train's watcher closes its run in seconds
    while True:
        runs = client.search_runs([experiment.experiment_id])
        statuses = {r.info.run_id: r.info.status for r in runs}
        if "RUNNING" not in statuses.values() or time.monotonic() > deadline:
            break
        time.sleep(1)
    # None left RUNNING, even a train killed in a `dvc repro -f` that the next repro
    # restored from the run-cache instead of training again.
    assert set(statuses.values()) <= {"FINISHED", "KILLED"}, statuses
    assert "FINISHED" in statuses.values()
