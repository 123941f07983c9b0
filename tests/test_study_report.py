"""docs/study/report.py: the recipe study's threshold table and FCD curves, read from a real
MLflow store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlflow.tracking import MlflowClient
from PIL import Image

from .conftest import run_docs_script


def _report(uri: str, figure: Path) -> subprocess.CompletedProcess:
    return run_docs_script("study/report.py", uri, "--figure", str(figure))


def _log_run(
    client, experiment, name, curve, status="FINISHED", fcd=None, params=None, live=None
) -> None:
    run_id = client.create_run(experiment, tags={"dvc_exp_name": name}).info.run_id
    params = {"train.iterations": 6000, "train.eval_samples": 2000, **(params or {})}
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for step, value in curve:
        client.log_metric(run_id, "quality/fcd", value, step=step)
    for step, value in live or []:
        client.log_metric(run_id, "quality/live_fcd", value, step=step)
    client.log_metric(run_id, "cpu_seconds_per_iteration", 0.6)
    if fcd is not None:
        client.log_metric(run_id, "fcd", fcd)
    client.set_terminated(run_id, status)


def test_without_study_runs_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    figure = tmp_path / "fcd.png"
    result = _report(f"sqlite:///{tmp_path / 'empty.db'}", figure)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no finished study run with a quality curve in sqlite:///")
    assert not figure.exists() and result.stdout == ""


def test_it_finds_when_each_recipe_first_falls_below_each_threshold(tmp_path):
    uri = f"sqlite:///{tmp_path / 'study.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("dcgan", artifact_location=tmp_path.as_uri())
    _log_run(client, experiment, "study-book", [(500, 80.0), (1000, 45.0), (1500, 30.0)], fcd=25.0)
    # Below 40 at 1000, back above it at 1500: the first crossing counts, not the last.
    adam = [(500, 50.0), (1000, 19.0), (1500, 41.0), (2000, 9.5), (2500, 9.5)]
    _log_run(client, experiment, "study-adam", adam, fcd=7.25)
    _log_run(client, experiment, "study-ttur", [(500, 1.0)], status="KILLED")  # unfinished
    _log_run(client, experiment, "seed1", [(500, 1.0)])  # not a study experiment's name
    figure = tmp_path / "fcd.png"

    result = _report(uri, figure)

    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[0] for c in cells] == ["adam", "book"]  # by lowest FCD in training
    adam, book = cells
    # 0.6 CPU s/iteration: 1000 iterations are 10 CPU minutes.
    assert adam[3:6] == ["1000 (10)", "1000 (10)", "2000 (20)"]
    assert adam[6] == "9.50 at 2000" and adam[7] == "7.25"
    assert book[3:6] == ["1500 (15)", "not reached", "not reached"]
    assert book[1] == "(the defaults)"  # 6000 iterations are the study's, not a recipe's flag
    with Image.open(figure) as image:
        assert image.size == (800, 450)


def test_runs_named_by_recipe_and_seed_show_their_flags_and_match_selects_them(tmp_path):
    """The averaged generator's study: study-<recipe>-s<seed>, each with the params that make
    it; --match keeps some; the live G's curve is drawn, not tabled."""
    uri = f"sqlite:///{tmp_path / 'study.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("dcgan", artifact_location=tmp_path.as_uri())
    averaged = {"train.ema_decay": 0.995, "train.keep": "best", "train.eval_interval": 250}
    curve, live = [(250, 90.0), (500, 35.0)], [(250, 80.0), (500, 45.0)]
    for seed in (0, 1):
        params = {**averaged, "train.seed": seed, "train.devices": "", "train.beta_1": 0.9}
        _log_run(client, experiment, f"study-ema0995-best-s{seed}", curve, params=params, live=live)
    _log_run(client, experiment, "study-book", [(500, 30.0)])
    figure = tmp_path / "averaged.png"

    result = run_docs_script("study/report.py", uri, "--match", ".*-s[01]", "--figure", str(figure))

    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert sorted(c[0] for c in cells) == ["ema0995-best-s0", "ema0995-best-s1"]
    flags = {c[0]: c[1] for c in cells}
    # The defaults (seed 0, beta_1 0.9, no devices) and the scoring interval are no flags.
    assert flags["ema0995-best-s0"] == "-S train.ema_decay=0.995 -S train.keep=best"
    assert flags["ema0995-best-s1"] == flags["ema0995-best-s0"] + " -S train.seed=1"
    assert all(c[3] == "500 (5)" for c in cells)  # the average's curve, not the live G's
    assert figure.is_file()

    bad = run_docs_script("study/report.py", uri, "--match", "(", "--figure", str(figure))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --match '(' is not a regular")
