"""docs/sweep/report.py: the recipe sweep's table and grids, read from a real MLflow store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from PIL import Image

from .conftest import run_docs_script

GRID = (60, 40)  # width, height of each run's stand-in onnx_samples.png


def _report(uri: str, grids: Path) -> subprocess.CompletedProcess:
    return run_docs_script("sweep/report.py", uri, "--grids", str(grids))


def _log_sweep_run(
    client: MlflowClient, experiment: str, tmp: Path, name: str, seed: int, fcd: float, status: str
) -> None:
    run = client.create_run(experiment, tags={"dvc_exp_name": name})
    run_id = run.info.run_id
    client.log_param(run_id, "train.seed", seed)
    client.log_param(run_id, "train.iterations", 2000)
    metrics = {
        "fcd": fcd,
        "mnist_score": 6.0,
        "min_class_share": 0.05,
        "max_class_share": 0.15,
        "cpu_seconds_per_iteration": 0.9,
        "seconds_per_iteration": 0.5,
    }
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    grid = tmp / run_id / "onnx_samples.png"
    grid.parent.mkdir()
    # Each run's grid is one grey level, its FCD, so the drawn grids can be told apart.
    Image.fromarray(np.full(GRID[::-1], int(fcd), np.uint8)).save(grid)
    client.log_artifact(run_id, str(grid))
    client.set_terminated(run_id, status)


def test_without_sweep_runs_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    grids = tmp_path / "grids.png"
    result = _report(uri, grids)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: no finished sweep run in sqlite:///")
    assert "docs/results.md" in lines[-1]
    assert not grids.exists()
    assert result.stdout == ""


def test_it_ranks_recipes_by_mean_fcd_and_draws_the_book_beside_the_best(tmp_path):
    uri = f"sqlite:///{tmp_path / 'sweep.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(
        "dcgan", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    for name, seed, fcd, status in [
        ("sweep-book-s0", 0, 60.0, "FINISHED"),
        ("sweep-adam-s0", 0, 40.0, "FINISHED"),
        ("sweep-adam-s1", 1, 50.0, "FINISHED"),
        ("sweep-ttur-s0", 0, 30.0, "FINISHED"),  # the lowest, but at one seed: not called best
        ("sweep-smooth-s0", 0, 1.0, "KILLED"),  # only finished runs count
        ("seed1", 0, 2.0, "FINISHED"),  # not a sweep experiment's name
    ]:
        _log_sweep_run(client, experiment, tmp_path, name, seed, fcd, status)
    grids = tmp_path / "grids.png"

    result = _report(uri, grids)

    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| ttur", "| adam", "| book"]
    adam = rows[1].split(" | ")
    assert adam[2] == "0, 1" and adam[3] == "45.0 (40.0–50.0)"
    assert adam[6] == "30.0"  # CPU minutes: 0.9 s/it × 2 000 it
    # Two panels, 16 px apart, each under a 36 px label: the book's recipe, and adam (the best
    # of those run at two seeds), each from its seed-0 run.
    with Image.open(grids) as image:
        assert image.size == (2 * GRID[0] + 16, GRID[1] + 36)
        assert image.getpixel((5, 36 + 5)) == 60
        assert image.getpixel((GRID[0] + 16 + 5, 36 + 5)) == 40
