"""`dcgan stack`'s refusals and state handling, without starting servers (test_team starts
the real stack)."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys

import pytest

from dcgan.cli import main
from dcgan.stack import Stack
from dcgan.stack.supervise import Proc

PORTS = {"mlflow": 5001, "s3": 8333, "postgres": 5433}


def test_commands_without_a_stack_say_how_to_start_one(tmp_path, capsys):
    for action in ("env", "remote", "status"):
        assert main(["stack", action, "--dir", str(tmp_path / "none")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: no stack in {tmp_path / 'none'}; start one with `./run stack up`"]
    assert main(["stack", "down", "--dir", str(tmp_path / "none")]) == 0  # nothing to stop


def test_a_damaged_state_file_is_one_line(tmp_path, capsys):
    (tmp_path / "stack.json").write_text("{not json")
    assert main(["stack", "env", "--dir", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'stack.json'} is not a stack's state")


def test_state_is_private_and_env_prints_only_the_client_side(tmp_path, capsys):
    secrets = {
        "postgres": "pg-secret",
        "mlflow_admin": "admin-secret",
        "flask": "flask-secret",
        "s3_access_key": "key",
        "s3_secret_key": "s3-secret",
    }
    Stack(tmp_path, PORTS, secrets).save()
    assert stat.S_IMODE((tmp_path / "stack.json").stat().st_mode) == 0o600
    assert json.loads((tmp_path / "stack.json").read_text())["ports"]["mlflow"] == 5001

    assert main(["stack", "env", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "export MLFLOW_TRACKING_URI=http://127.0.0.1:5001",
        "export MLFLOW_TRACKING_USERNAME=admin",
        "export MLFLOW_TRACKING_PASSWORD=admin-secret",
    ]
    for server_side in ("pg-secret", "flask-secret", "s3-secret"):  # the server's, not a client's
        assert server_side not in out

    assert main(["stack", "status", "--dir", str(tmp_path)]) == 2  # nothing runs
    shown = capsys.readouterr()
    assert [row.split() for row in shown.out.splitlines()[:4]] == [
        ["service", "state", "address", "pid"],
        ["postgres", "stopped", "127.0.0.1:5433", "-"],
        ["s3", "stopped", "http://127.0.0.1:8333", "-"],
        ["mlflow", "stopped", "http://127.0.0.1:5001", "-"],
    ]
    assert shown.err.strip().splitlines() == [
        "error: postgres, s3, mlflow not running; `./run stack up` starts what is down, "
        "with its data"
    ]


def test_remote_goes_into_the_clones_local_config(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys
    from pathlib import Path

    state = tmp_path / "state"
    state.mkdir()
    keys = {"s3_access_key": "AKEY", "s3_secret_key": "SKEY", "mlflow_admin": "x"}
    Stack(state, PORTS, keys).save()
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert main(["stack", "remote", "--dir", str(state)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: {outside} is not a DVC project; run this in a clone"

    clone = tmp_path / "clone"
    clone.mkdir()
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=clone, check=True)
    monkeypatch.chdir(clone)
    assert main(["stack", "remote", "--dir", str(state)]) == 0
    assert main(["stack", "remote", "--dir", str(state)]) == 0  # again: the same config
    local = (clone / ".dvc/config.local").read_text()
    assert "url = s3://dvc/store" in local and "endpointurl = http://127.0.0.1:8333" in local
    assert "secret_access_key = SKEY" in local and "remote = team" in local
    assert "SKEY" not in (clone / ".dvc/config").read_text()  # the committed config
    listed = subprocess.run([dvc, "remote", "list"], cwd=clone, capture_output=True, text=True)
    assert listed.stdout.split() == ["team", "s3://dvc/store", "(default)"]


# After a reboot the PID is another process's: started at another time, or another command.
ELSEWHERE = {
    "started-earlier": lambda proc: dataclasses.replace(proc, create_time=proc.create_time - 3600),
    "other-command": lambda proc: dataclasses.replace(proc, cmdline=("weed", "mini")),
}


@pytest.mark.parametrize("elsewhere", ELSEWHERE.values(), ids=ELSEWHERE.keys())
def test_a_recorded_pid_that_is_another_process_now_is_left_alone(tmp_path, capsys, elsewhere):
    """After a reboot, a PID in .stack/ may be another process's: status says so and down
    leaves it alone; the process really recorded is stopped, group and all."""
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        real = Proc.of(other.pid)
        recorded = elsewhere(real)
        keys = {"mlflow_admin": "x", "s3_access_key": "k", "s3_secret_key": "s"}
        (tmp_path / "old").mkdir()
        Stack(tmp_path / "old", PORTS, keys, procs={"mlflow": recorded}).save()
        assert main(["stack", "status", "--dir", str(tmp_path / "old")]) == 2
        out = capsys.readouterr().out
        assert f"stopped (PID {other.pid} is another process now, left alone)" in out
        assert main(["stack", "down", "--dir", str(tmp_path / "old")]) == 0
        assert other.poll() is None  # still running

        (tmp_path / "ours").mkdir()
        Stack(tmp_path / "ours", PORTS, keys, procs={"mlflow": real}).save()
        main(["stack", "status", "--dir", str(tmp_path / "ours")])
        mlflow_row = capsys.readouterr().out.splitlines()[3].split()
        assert mlflow_row == ["mlflow", "running", "http://127.0.0.1:5001", str(other.pid)]
        assert main(["stack", "down", "--dir", str(tmp_path / "ours")]) == 0
        assert other.wait(timeout=30) is not None  # stopped by down
    finally:
        other.kill()
        other.wait()


def test_a_state_of_an_older_dcgan_is_refused_in_one_line(tmp_path, capsys):
    """Bare PIDs cannot be told from another process's: such a state is not acted on."""
    state = {"ports": PORTS, "secrets": {}, "pids": {"mlflow": 1}}
    (tmp_path / "stack.json").write_text(json.dumps(state))
    assert main(["stack", "down", "--dir", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'stack.json'} is not a stack's state")
