"""The `dcgan` command's and the stages' conventions: --version, -v/-q and DCGAN_LOG_LEVEL, help a
user can read, and a file the user names is the file used (or one line saying why not)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import metadata

import pytest

from dcgan import cli
from dcgan.errors import LOG_LEVEL_ENV, log_level

from .conftest import ROOT


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"dcgan {metadata.version('dcgan')}\n"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_help_is_plain_text_with_defaults_and_a_line_per_command():
    parser = cli.build_parser()
    commands = _subparsers(parser)
    assert set(commands) == {"sample", "runs", "promote", "bench", "stack", "sweep"}
    top = parser.format_help()
    for name, command in commands.items():
        text = command.format_help()
        assert "``" not in text and ":func:" not in text, name
        assert command.description and "\n" not in command.description, name
        assert command.description in " ".join(top.split()), name  # its line in `dcgan -h`
        assert "(default: None)" not in text and "(default: False)" not in text, name
    assert "``" not in top
    bench = " ".join(commands["bench"].format_help().split())
    assert "(default: 30)" in bench and "(default: reports/bench.json)" in bench
    assert "(default: 0)" in " ".join(commands["sample"].format_help().split())  # --seed


@pytest.mark.parametrize(("given", "level"), [("", 20), ("debug", 10), (" WARNING ", 30)])
def test_dcgan_log_level_sets_the_level_and_flags_win(monkeypatch, given, level):
    monkeypatch.setenv(LOG_LEVEL_ENV, given)
    assert log_level() == level
    assert log_level(verbose=True) == 10 and log_level(quiet=True) == 30


def test_a_bad_log_level_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(LOG_LEVEL_ENV, "loud")
    assert cli.main(["runs", str(tmp_path / "g.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: DCGAN_LOG_LEVEL='loud' is not a log level; use one of DEBUG, INFO, WARNING, ERROR\n"
    )


# In a fresh process, inside run_main as every stage runs: the level MLflow's loggers get when
# it is imported after our set-up, and which of its lines reach stderr.
MLFLOW_LINES = """
import logging, sys
from dcgan.errors import run_main

def main():
    import mlflow
    logging.getLogger("mlflow.utils.environment").info("mlflow-info-line")
    logging.getLogger("mlflow.tracking").warning("mlflow-warning-line")
    logging.getLogger("dcgan.pipeline").info("our-info-line")
    logging.getLogger("dcgan.pipeline").debug("our-debug-line")

sys.exit(run_main(main))
"""


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("", {"mlflow-warning-line", "our-info-line"}, {"mlflow-info-line", "our-debug-line"}),
        ("DEBUG", {"mlflow-info-line", "mlflow-warning-line", "our-debug-line"}, set()),
        ("WARNING", {"mlflow-warning-line"}, {"our-info-line", "mlflow-info-line"}),
    ],
)
def test_mlflow_info_lines_show_only_at_debug(level, shown, hidden):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    env[LOG_LEVEL_ENV] = level
    proc = subprocess.run(
        [sys.executable, "-c", MLFLOW_LINES], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {line for line in shown if line not in proc.stderr} == set(), proc.stderr
    assert {line for line in hidden if line in proc.stderr} == set(), proc.stderr


def test_a_stage_refuses_a_bad_log_level_in_one_line(tmp_path):
    env = {**os.environ, LOG_LEVEL_ENV: "loud"}
    proc = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--params", str(tmp_path / "p.yaml")]
        + ["--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: DCGAN_LOG_LEVEL='loud' is not a log level; use one of DEBUG, INFO, WARNING, ERROR"
    ], proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--model", "--keras"])
def test_bench_refuses_a_missing_file_it_was_given(tmp_path, capsys, flag):
    out = tmp_path / "bench.json"
    argv = ["bench", "--params", str(ROOT / "params.yaml"), "--out", str(out)]
    code = cli.main([*argv, flag, str(tmp_path / "typo.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        f"error: {flag} {tmp_path / 'typo.onnx'} not found; pass an existing file or drop {flag}"
    ]
    assert not out.exists()


def test_bench_refuses_a_model_file_that_is_not_a_generator(tmp_path, capsys):
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"not onnx")
    out = tmp_path / "bench.json"
    argv = ["bench", "--params", str(ROOT / "params.yaml"), "--out", str(out), "--model"]
    code = cli.main([*argv, str(garbage)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: {garbage} is not a loadable ONNX model")
    assert not out.exists()


@pytest.mark.parametrize("flags", [[], ["-v"]], ids=["default", "verbose"])
def test_dcgan_shows_mlflows_info_lines_only_with_v(tmp_path, flags):
    """A new store makes MLflow log "Creating initial MLflow database tables" at INFO."""
    model = tmp_path / "g.onnx"
    model.write_bytes(b"x")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_LOGGING_LEVEL", LOG_LEVEL_ENV)}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'new.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "dcgan.cli", *flags, "runs", str(model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.rstrip().splitlines()[-1].startswith(
        "error: no MLflow run at "
    ), proc.stderr
    assert ("Creating initial MLflow database tables" in proc.stderr) == bool(flags), proc.stderr
