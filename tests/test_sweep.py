"""`dcgan sweep`: the grid in DVC's grammar, every refusal before any work, the summary, and
Ctrl-C on a local Ray cluster. A local sweep that pushes each trial, nests its MLflow run and
reports the trial that failed for its own reason runs on the team's stack (test_team); across
hosts, test_sweep_cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dcgan.cli import main
from dcgan.sweep import grid
from dcgan.sweep.summary import table

from .conftest import ROOT, run
from .repos import copy_built

GIT_ID = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dvc(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, timeout=60)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A clone with the project's params.yaml and .gitignore, pushed to a bare 'origin'; the
    current folder."""
    for key, value in GIT_ID.items():
        monkeypatch.setenv(key, value)
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    for name in ("params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, work / name)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "params")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    monkeypatch.chdir(work)
    return work


def refused(capsys, *args: str) -> str:
    """Run `dcgan sweep ARGS`: it must fail with exit 2 and one line on stderr."""
    assert main(["sweep", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize(
    ("given", "trials"),
    [
        (["train.seed=1,2,3"], [("train.seed=1",), ("train.seed=2",), ("train.seed=3",)]),
        (["train.seed=range(1,3)"], [("train.seed=1",), ("train.seed=2",)]),
        (["train.devices='GPU:0,GPU:1'"], [("train.devices='GPU:0,GPU:1'",)]),
        (
            ["train.seed=0,1", "train.keep=last,best"],
            [
                ("train.seed=0", "train.keep=last"),
                ("train.seed=0", "train.keep=best"),
                ("train.seed=1", "train.keep=last"),
                ("train.seed=1", "train.keep=best"),
            ],
        ),
    ],
)
def test_values_expand_with_dvcs_grammar_into_trials_named_as_its_queue_names_them(given, trials):
    expanded = grid.expand(given, "s")
    assert [t.overrides for t in expanded] == trials
    assert [t.name for t in expanded] == [f"s-{k}" for k in range(1, len(trials) + 1)]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("train.seed", "-S 'train.seed' is not KEY=VALUES; use DVC's grammar"),
        ("other.yaml:train.seed=1", "a sweep sets params.yaml only"),
        ("train.seed=[1,2", "-S train.seed=[1,2: no viable alternative"),
        (
            f"train.seed=range(0,{grid.MAX_TRIALS + 1})",
            f"the grid has {grid.MAX_TRIALS + 1} trials",
        ),
        ("train.sed=1", "trial s-1 (train.sed=1): a key is not in params.yaml"),
        ("train.ema_decay=0.5,1.5", "trial s-2 (train.ema_decay=1.5): train.ema_decay must be in"),
    ],
)
def test_a_bad_grid_or_value_is_refused_in_one_line_before_any_work(
    project, capsys, given, message
):
    err = refused(capsys, "-S", given, "-n", "s")
    assert message in err
    assert git(project, "ls-remote", "origin", "refs/exps/*") == ""


def test_values_that_only_fail_together_are_refused_by_the_configs_own_check(project, capsys):
    err = refused(capsys, "-S", "train.keep=best", "-S", "train.eval_interval=0,100", "-n", "s")
    assert "trial s-1 (train.keep=best train.eval_interval=0): train.keep must be last" in err


def test_a_sweep_across_machines_refuses_a_store_that_only_this_machine_has(
    project, capsys, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    err = refused(capsys, "-S", "train.seed=0,1", "--address", "127.0.0.1:1")
    assert "needs a tracking server they all reach" in err and "MLFLOW_TRACKING_URI" in err
    assert not (project / "mlflow.db").exists()


def test_workers_must_find_the_commit_on_the_git_remote(project, capsys):
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n")
    assert "uncommitted change(s) (first: params.yaml)" in refused(capsys, "-S", "train.seed=1")
    git(project, "commit", "-q", "-am", "not pushed")
    commit = git(project, "rev-parse", "--short=7", "HEAD").strip()
    err = refused(capsys, "-S", "train.seed=1")
    assert f"commit {commit} is not on git remote 'origin'" in err and "git push origin" in err
    err = refused(capsys, "-S", "train.seed=1", "--git-remote", "team")
    assert "git has no remote 'team'" in err


def test_a_git_url_with_a_password_never_reaches_the_trials(project, capsys):
    secret = "s3cr3t-" + os.urandom(4).hex()
    git(project, "remote", "add", "team", f"https://user:{secret}@git.example.invalid/dcgan.git")
    err = refused(capsys, "-S", "train.seed=1", "--git-remote", "team")
    assert "git remote 'team' has a password in its URL" in err and secret not in err


def test_a_name_the_remote_already_has_is_refused(project, capsys):
    head = git(project, "rev-parse", "HEAD").strip()
    git(project, "push", "-q", "origin", f"{head}:refs/exps/ab/{head}/s-2")
    err = refused(capsys, "-S", "train.seed=1,2", "-n", "s")
    assert "already has an experiment named s-2; name this sweep another way with -n" in err


def test_the_dvc_remote_must_be_one_a_fresh_clone_sees(project, capsys):
    dvc(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "dvc")
    git(project, "push", "-q", "origin", "main")
    err = refused(capsys, "-S", "train.seed=1")
    assert "the project has no default DVC remote that a clone would see" in err
    dvc(project, "remote", "add", "--local", "-d", "mine", "/x")
    err = refused(capsys, "-S", "train.seed=1", "--dvc-remote", "mine")
    assert "DVC remote 'mine' is not in the committed .dvc/config" in err


def test_the_summary_puts_the_lowest_fcd_first_and_failures_last_with_their_cause():
    done = {"status": "done", "mnist_score": 7.0, "best_training_fcd": 30.0, "node": "a"}
    results = [
        {**done, "name": "s-1", "overrides": ["train.seed=0"], "fcd": 40.0, "best_iteration": 5},
        {"name": "s-3", "overrides": ["train.seed=2"], "status": "failed", "cause": "a | b"},
        {**done, "name": "s-2", "overrides": ["train.seed=1"], "fcd": 20.0, "best_iteration": 9},
    ]
    rows = table(results).splitlines()
    assert rows[0].startswith("| trial | -S | FCD |")
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["s-2", "s-1", "s-3"]
    assert "| 20.00 | 7.00 | 30.00 (9) | a |" in rows[2]
    assert "failed: a / b" in rows[4]  # a cause never breaks the table


def pushed_copy(
    built, folder: Path, dvc_url: str | None = None, endpoint: str | None = None
) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the built tiny pipeline, committed with a DVC remote in its .dvc/config (a
    local folder, or ``dvc_url`` at the S3 ``endpoint``) and pushed to a bare 'origin': the
    clone, the bare remote, the environment."""
    work, env = copy_built(built, folder / "work")
    bare = folder / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], folder, env)
    run(["dvc", "remote", "add", "-d", "store", dvc_url or str(folder / "dvc-store")], work, env)
    if endpoint:
        run(["dvc", "remote", "modify", "store", "endpointurl", endpoint], work, env)
    run(["git", "add", "-A"], work, env)
    run(["git", "commit", "-q", "-m", "built"], work, env)
    run(["git", "remote", "add", "origin", str(bare)], work, env)
    run(["git", "push", "-q", "origin", "main"], work, env)
    return work, bare, {**env, "HOME": str(folder / "home")}  # Ray keeps its token in ~/.ray


def generator_in_a_third_clone(bare: Path, name: str, third: Path, env: dict[str, str]) -> str:
    """The SHA-256 of experiment ``name``'s generator.onnx as a third clone gets it from the
    two remotes alone: `git clone`, `dvc exp pull`, `dvc exp apply`, `dvc pull`."""
    import hashlib

    run(["git", "clone", "-q", str(bare), str(third)], third.parent, env)
    run(["git", "checkout", "-q", "main"], third, env)
    for command in (["exp", "pull", "origin", name], ["exp", "apply", name], ["pull"]):
        run(["dvc", *command], third, env)
    return hashlib.sha256((third / "models/generator.onnx").read_bytes()).hexdigest()


@pytest.mark.slow
def test_ctrl_c_cancels_the_trials_and_leaves_no_process_and_nothing_pushed(built_tiny, tmp_path):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) while the first
    trial trains: exit 130, every process the sweep started gone, the parent run KILLED."""
    import signal
    import time

    import psutil
    from mlflow.tracking import MlflowClient

    work, bare, env = pushed_copy(built_tiny, tmp_path)
    log = tmp_path / "sweep.log"
    sweep = started_as_a_terminal_would(["dcgan", "sweep", "-S", "train.seed=1,2", "-n", "c"],
                                        work, env, log)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not training(sweep.pid):
            assert sweep.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        started = psutil.Process(sweep.pid).children(recursive=True)
        os.killpg(sweep.pid, signal.SIGINT)
        assert sweep.wait(timeout=120) == 130, log.read_text()
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    assert "error: interrupted" in log.read_text()
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], [p.info for p in alive]
    assert not list(Path(tempfile.gettempdir()).glob("dcgan-c-*"))
    assert run(["git", "for-each-ref", "refs/exps"], bare, env) == ""

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    assert [r.info.status for r in runs if r.info.run_name == "c"] == ["KILLED"]


def started_as_a_terminal_would(
    command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> subprocess.Popen:
    """``command`` in a process group of its own (Ctrl-C is SIGINT to it), its output in
    ``log``."""
    import signal

    with log.open("w") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A terminal's command takes SIGINT; a suite started in the background by a shell
            # without job control would hand down SIGINT ignored, and Python keeps it so.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def training(pid: int) -> bool:
    """Whether a process under ``pid`` (Ray's worker, its dvc) runs the train stage."""
    import psutil

    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "stages.train" in " ".join(child.cmdline()):
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def test_a_stage_that_dies_is_reported_by_its_name_and_exit_status(tmp_path):
    """DVC's line names the stage's whole command before its status; the row keeps the
    stage and the status, which a cut of that line would lose."""
    from dcgan.sweep import trial

    command = "python -m stages.train --params params.yaml " + "--flag value " * 40
    log = tmp_path / "trial.log"
    log.write_text(f"$ dvc exp run\nERROR: failed to reproduce 'train': failed to run: {command}, "
                   "exited with -9\n")  # fmt: skip
    assert trial._cause(log) == "ERROR: failed to reproduce 'train': its command exited with -9"
    log.write_text("ERROR: something else\nerror: params.yaml: lower train.batch_size\n")
    assert trial._cause(log) == "error: params.yaml: lower train.batch_size"


def test_a_failed_dvc_command_of_the_driver_is_reported_by_dvcs_error_not_its_help_line():
    """DVC ends a failure with a line on where to ask for help; the driver's one line keeps
    the ERROR line before it (a push without the S3 keys once said only "Having any
    troubles?")."""
    from dcgan.sweep.checks import last_line

    cause = "ERROR: failed to push data to the cloud - Unable to locate credentials"
    said = (
        f"Collecting\n{cause}\n"
        "Having any troubles? Hit us up at https://dvc.org/support, we are always happy to help!\n"
    )
    done = subprocess.CompletedProcess(["dvc", "push"], 1, stdout="", stderr=said)
    assert last_line(done) == cause
    git_said = subprocess.CompletedProcess(["git"], 128, stdout="", stderr="fatal: no remote\n\n")
    assert last_line(git_said) == "fatal: no remote"
    quiet = subprocess.CompletedProcess(["dvc"], 1, stdout="", stderr="")
    assert last_line(quiet) == "no output"
