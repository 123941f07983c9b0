"""`dcgan sweep --address` on a Ray cluster of three hosts, as docs/team.md starts one: network
namespaces this test makes, each with its own hostname, joined by a bridge on the head. The
head schedules nothing and runs the tracking server; two workers offer one trial each. Two
trials start, one on each worker; the worker that trains the first is powered off mid-trial
(every process in its namespace killed). The trial runs again on the other worker; each trial
ends with one FINISHED run nested under the sweep's and one pushed experiment, and a third
clone gets a trial's generator from the remotes alone. No secret of the hosts' environment
reaches what the cluster keeps: its job and task tables (what Ray's dashboard shows) or its
files. And Ctrl-C on the head while a trial trains on each worker stops both, on their nodes.
Both tests run on one cluster, the Ctrl-C test first (the power-off test leaves one worker)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import experiment_names, run
from .test_sweep import (
    generator_in_a_third_clone,
    pushed_copy,
    started_as_a_terminal_would,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None,
        reason="hosts in network namespaces need root and iproute2's ip (util-linux unshare)",
    ),
]

BIN = Path(sys.executable).parent
SUBNET = "10.77.0"  # private to the namespaces: the bridge lives in the head's
HEAD_PORT, MLFLOW_PORT = 6379, 5000
# The head notices a powered-off node within ~2 s instead of Ray's default ~30 s.
FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "4",
}


class Hosts:
    """One network namespace and hostname a host, on one LAN: a bridge in the first host's
    namespace with an address on it, and a veth into it from each other host."""

    def __init__(self, names: list[str]) -> None:
        tag = f"dc{os.getpid()}"
        self.ns = {name: f"{tag}{name[0]}" for name in names}
        self.ip = {name: f"{SUBNET}.{k + 1}" for k, name in enumerate(names)}
        self.names = names
        # Every host's TMPDIR: Ray's session files and the trials' clones, searched for secrets
        # and removed with the hosts. Short: a socket path under it has at most 107 bytes.
        self.tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))

    def up(self) -> Hosts:
        head, *others = self.names
        for name in self.names:
            _ip("netns", "add", self.ns[name])
            _ip("-n", self.ns[name], "link", "set", "lo", "up")
        hns = self.ns[head]
        _ip("-n", hns, "link", "add", "br0", "type", "bridge")
        _ip("-n", hns, "addr", "add", f"{self.ip[head]}/24", "dev", "br0")
        _ip("-n", hns, "link", "set", "br0", "up")
        for name in others:
            near, far = f"{self.ns[name]}h", f"{self.ns[name]}x"
            _ip("link", "add", near, "type", "veth", "peer", "name", far)
            _ip("link", "set", near, "netns", hns)
            _ip("link", "set", far, "netns", self.ns[name])
            _ip("-n", hns, "link", "set", near, "master", "br0", "up")
            _ip("-n", self.ns[name], "addr", "add", f"{self.ip[name]}/24", "dev", far)
            _ip("-n", self.ns[name], "link", "set", far, "up")
        return self

    def on(self, name: str, command: list[str]) -> list[str]:
        """``command`` as host ``name`` runs it: in its network namespace, under its hostname."""
        script = 'hostname "$0" && exec "$@"'
        return ["ip", "netns", "exec", self.ns[name], "unshare", "--uts", "sh", "-c", script,
                name, *command]  # fmt: skip

    def pids(self, name: str) -> list[int]:
        found = subprocess.run(
            ["ip", "netns", "pids", self.ns[name]], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in found.stdout.split()]

    def power_off(self, name: str) -> None:
        """Every process of the host killed at once, as a power cut does."""
        deadline = time.monotonic() + 30
        while (pids := self.pids(name)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        assert not self.pids(name), f"{name} still runs {self.pids(name)}"

    def down(self) -> None:
        for name in self.names:
            if subprocess.run(["ip", "netns", "pids", self.ns[name]], capture_output=True).stdout:
                self.power_off(name)
            subprocess.run(["ip", "netns", "del", self.ns[name]], check=False)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    lan = Hosts(["head", "alpha", "beta"])
    try:
        try:  # root in a container may still lack the right to make namespaces
            lan.up()
            subprocess.run(lan.on("head", ["true"]), check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot make the test's hosts here: {' '.join(exc.cmd[:4])} said "
                        f"{(exc.stderr or '').strip()[-200:]!r}")  # fmt: skip
        yield lan
    finally:
        lan.down()
        shutil.rmtree(lan.tmp, ignore_errors=True)


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)


def answers(lan: Hosts, url: str, env: dict[str, str]) -> bool:
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    command = lan.on("head", [sys.executable, "-c", probe])
    return subprocess.run(command, env=env, capture_output=True).returncode == 0


def running_runs(db: Path, experiment: str) -> int:
    """The tracking server's RUNNING runs of the DVC experiment ``experiment``, read from its
    SQLite file (the server is in the head's namespace; the file is on this disk)."""
    import sqlite3

    if not db.exists():
        return 0
    query = (
        "SELECT count(*) FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid WHERE "
        "runs.status = 'RUNNING' AND tags.key = 'dvc_exp_name' AND tags.value = ?"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute(query, (experiment,)).fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not made yet, or the file is locked
        return 0


def trial_processes(lan: Hosts, name: str, trials: str) -> list:
    """Host ``name``'s processes that work for ``trials`` (a sweep's name, or one trial's):
    those in such a trial's clone (its dvc, git and stages), and what they started."""
    import psutil

    found: dict[int, psutil.Process] = {}
    for pid in lan.pids(name):
        try:
            proc = psutil.Process(pid)
            if f"/dcgan-{trials}-" in proc.cwd():
                found[pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:  # gone, or a zombie whose cwd cannot be read
            continue
    return list(found.values())


def training_on(lan: Hosts, name: str, trial: str) -> bool:
    """Whether host ``name`` runs the train stage of ``trial`` (in that trial's clone)."""
    import psutil

    for proc in trial_processes(lan, name, trial):
        try:
            if "stages.train" in proc.cmdline():
                return True
        except psutil.Error:
            continue
    return False


CLUSTER_STATE = """import json, sys, ray
from ray._private.state import state
ray.init(address=sys.argv[1], log_to_driver=False)
jobs = state.job_table()
tasks = state._get_all_task_events()
nodes = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
print(json.dumps({"jobs": jobs, "tasks": tasks, "nodes": nodes}, default=str))
"""


def team_env(env: dict[str, str], lan: Hosts, password: str, s3_key: str) -> dict[str, str]:
    """What docs/team.md has every machine export before `ray start`: the tracking server and
    its login, the S3 keys, Ray's token; and the hosts' TMPDIR. The server here has no logins:
    the password only has to travel as far as a real one would."""
    return {
        **{k: v for k, v in env.items() if not k.startswith(("MLFLOW_", "AWS_", "RAY_"))},
        "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
        "TMPDIR": str(lan.tmp),
        "MLFLOW_TRACKING_URI": f"http://{lan.ip['head']}:{MLFLOW_PORT}",
        "MLFLOW_TRACKING_USERNAME": "alice",
        "MLFLOW_TRACKING_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": "team",
        "AWS_SECRET_ACCESS_KEY": s3_key,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(12),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def start_cluster(lan: Hosts, env: dict[str, str], server: Path) -> str:
    """The tracking server (SQLite, artifacts in a folder) and Ray's head on the head, a
    worker with one trial slot on each other host; the head's address."""
    head = f"{lan.ip['head']}:{HEAD_PORT}"
    mlflow_cmd = [sys.executable, "-m", "mlflow", "server", "--host", lan.ip["head"]]
    mlflow_cmd += ["--port", str(MLFLOW_PORT), "--workers", "1"]
    mlflow_cmd += ["--backend-store-uri", f"sqlite:///{server / 'mlflow.db'}"]
    mlflow_cmd += ["--artifacts-destination", str(server / "artifacts")]
    server_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with (server / "mlflow.log").open("w") as log:
        subprocess.Popen(lan.on("head", mlflow_cmd), env=server_env, stdout=log, stderr=log)
    ray_cmd = [str(BIN / "ray"), "start", "--object-store-memory", "100000000"]
    run(
        lan.on("head", [*ray_cmd, "--head", "--port", str(HEAD_PORT), "--num-cpus", "0",
                        "--node-ip-address", lan.ip["head"], "--include-dashboard", "false"]),
        server, {**env, **FAST_HEALTH_CHECKS}, timeout=120,
    )  # fmt: skip

    # One after the other: two nodes joining at once from one disk race for the socket names
    # in Ray's session folder ("Failed to get node info"), which separate machines do not share.
    # Each joins with SIGINT ignored, as `ray start` from a script's background job does:
    # Ctrl-C on the driver must stop the trials on such nodes too.
    ignoring_sigint = ["sh", "-c", 'trap "" INT; exec "$0" "$@"']
    for worker in ("alpha", "beta"):
        command = [*ray_cmd, "--address", head, "--node-ip-address", lan.ip[worker]]
        command = [*ignoring_sigint, *command, "--resources", '{"dcgan_trial": 1}']
        run(lan.on(worker, command), server, env)
    tracking = env["MLFLOW_TRACKING_URI"]
    wait_for(lambda: answers(lan, f"{tracking}/health", env), "the tracking server", 120)
    return head


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The module's running cluster: its hosts, the environment every host and the sweep run
    with (team_env's), the tracking server's folder, the head's address and the secrets of
    that environment."""

    lan: Hosts
    env: dict[str, str]
    server: Path
    head: str
    secrets: tuple[str, ...]


@pytest.fixture(scope="module")
def cluster(built_tiny, tmp_path_factory, hosts) -> Cluster:
    """One cluster for the module's tests, started once (Ray's head and two workers joining
    one after the other, and the server: ~12 s). The Ctrl-C test comes first: the power-off
    test leaves one worker."""
    folder = tmp_path_factory.mktemp("cluster")
    password, s3_key = secrets.token_hex(12), secrets.token_hex(12)
    # Ray keeps its token under ~/.ray: a home of the module's own.
    env = team_env({**built_tiny.env, "HOME": str(folder / "home")}, hosts, password, s3_key)
    server = folder / "server"
    server.mkdir()
    head = start_cluster(hosts, env, server)
    return Cluster(hosts, env, server, head, (password, s3_key))


def sweep_losing_a_node(
    lan: Hosts, work: Path, env: dict[str, str], server: Path, head: str
) -> tuple[str, str, dict]:
    """`dcgan sweep -S train.seed=1,2 -n n` from the head, a trial on each worker; the worker
    that trains n-1 powered off once both train stages have opened their runs. The sweep's
    output, the lost worker, and the cluster's job, task and node tables read after it."""
    log = server / "sweep.log"
    command = ["dcgan", "sweep", "-S", "train.seed=1,2", "-n", "n", "--address", head]
    with log.open("w") as out:
        sweep = subprocess.Popen(
            lan.on("head", command), cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    db = server / "mlflow.db"
    workers = ("alpha", "beta")
    try:
        wait_for(
            lambda: (
                sweep.poll() is not None
                or (
                    all(any(training_on(lan, w, t) for w in workers) for t in ("n-1", "n-2"))
                    and running_runs(db, "n-1") == running_runs(db, "n-2") == 1
                )
            ),
            "both trials training",
            300,
        )
        assert sweep.poll() is None, log.read_text()
        (lost,) = [w for w in workers if training_on(lan, w, "n-1")]
        lan.power_off(lost)
        assert sweep.wait(timeout=600) == 0, log.read_text()
        state = subprocess.run(
            lan.on("head", [sys.executable, "-c", CLUSTER_STATE, head]),
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert state.returncode == 0, state.stderr[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    return log.read_text(), lost, json.loads(state.stdout.strip().splitlines()[-1])


def watcher(proc) -> bool:
    """A stage's run watcher (dcgan.tracking.watcher): in a session of its own by design, it
    outlives a killed stage for the seconds it takes to mark the run KILLED, then exits."""
    import psutil

    try:
        return "dcgan.tracking.watcher" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def left_behind(procs: list) -> list[tuple[int, str]]:
    """Those of ``procs`` still running in a folder that is gone, by pid and command line: a
    trial that removed its clone before its processes stopped left them there (they die
    later, of the folder)."""
    import psutil

    found = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and not Path(proc.cwd()).exists():
                found.append((proc.pid, " ".join(proc.cmdline())[:120]))
        except psutil.Error:  # gone: fine
            continue
    return found


def test_ctrl_c_on_the_driver_stops_the_trials_on_every_node_and_pushes_nothing(
    built_tiny, tmp_path, cluster
):
    """Ctrl-C (SIGINT to `dcgan sweep --address`'s process group, on the head) while a trial
    trains on each worker (both joined with SIGINT ignored) and a third waits: exit 130; on
    each worker, every process of its trial gone and its clone removed (its stages' run
    watchers once they have closed their runs); nothing pushed; the sweep's run KILLED and no
    trial's left RUNNING."""
    import sqlite3

    import psutil

    hosts, env, server, head = cluster.lan, cluster.env, cluster.server, cluster.head
    work, bare, _ = pushed_copy(built_tiny, tmp_path)
    log = tmp_path / "sweep.log"
    command = ["dcgan", "sweep", "-S", "train.seed=1,2,3", "-n", "c", "--address", head]
    workers = ("alpha", "beta")
    sweep = started_as_a_terminal_would(hosts.on("head", command), work, env, log)
    try:
        wait_for(
            lambda: (
                sweep.poll() is not None
                or all(any(training_on(hosts, w, t) for w in workers) for t in ("c-1", "c-2"))
            ),
            "two trials training",
            300,
        )
        assert sweep.poll() is None, log.read_text()
        started = {
            w: [p for p in trial_processes(hosts, w, "c") if not watcher(p)] for w in workers
        }
        assert all(started.values()), started
        procs = [proc for found in started.values() for proc in found]
        os.killpg(sweep.pid, signal.SIGINT)
        # Each trial stops its processes, then removes its clone: none may run on in a
        # removed clone at any moment until the command has returned.
        orphans, deadline = [], time.monotonic() + 120
        while sweep.poll() is None and time.monotonic() < deadline:
            orphans += left_behind(procs)
            time.sleep(0.1)
        orphans += left_behind(procs)
        assert sweep.wait(timeout=5) == 130, log.read_text()
        assert "error: interrupted" in log.read_text()
        assert orphans == [], sorted(set(orphans))
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    for worker, procs in started.items():  # and gone (a few seconds for exits to be seen)
        _, alive = psutil.wait_procs(procs, timeout=5)
        assert alive == [], (worker, [p.cmdline() for p in alive])
        assert [p for p in trial_processes(hosts, worker, "c") if not watcher(p)] == [], worker
    assert not list(hosts.tmp.glob("dcgan-c-*"))  # each trial removed its clone
    wait_for(lambda: not any(trial_processes(hosts, w, "c") for w in workers), "the watchers", 60)
    assert not [line for line in log.read_text().splitlines() if line.startswith("| c-")]
    assert run(["git", "for-each-ref", "refs/exps"], bare, env) == ""

    with contextlib.closing(sqlite3.connect(server / "mlflow.db")) as db:
        statuses = db.execute(
            "SELECT runs.name, runs.status FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid "
            "WHERE tags.key = 'dcgan.sweep' AND tags.value = 'c' OR "
            "tags.key = 'dvc_exp_name' AND tags.value LIKE 'c-%'"
        ).fetchall()
    assert ("c", "KILLED") in statuses, statuses
    # A trial's run is KILLED if Ctrl-C came in its train stage (its watcher closed it), or
    # FINISHED if the stage had ended: never left RUNNING.
    assert not [s for s in statuses if s[0] != "c" and s[1] == "RUNNING"], statuses


def test_two_trials_on_two_workers_one_powered_off_mid_trial_and_no_secret_leaves(
    built_tiny, tmp_path, cluster
):
    import sqlite3

    from mlflow.tracking import MlflowClient

    hosts, env, server, head = cluster.lan, cluster.env, cluster.server, cluster.head
    work, bare, _ = pushed_copy(built_tiny, tmp_path)
    output, lost, state = sweep_losing_a_node(hosts, work, env, server, head)

    # Both trials finished on the worker left, n-1 on its second attempt; each result names
    # the node, by Ray's id and by hostname.
    (survivor,) = {"alpha", "beta"} - {lost}
    rows = [line for line in output.splitlines() if line.startswith("| n-")]
    assert sorted(r.split("|")[1].strip() for r in rows) == ["n-1", "n-2"]
    assert all(f"| {survivor} |" in row for row in rows), rows
    assert experiment_names(bare, env) == ["n-1", "n-2"]

    # Each trial one FINISHED run, nested under the sweep's; the powered-off attempt KILLED.
    client = MlflowClient(tracking_uri=f"sqlite:///{server / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dcgan").experiment_id])
    (parent,) = [
        r for r in runs if r.data.tags.get("dcgan.sweep") == "n" and r.info.run_name == "n"
    ]
    assert parent.info.status == "FINISHED"
    (table,) = (server / "artifacts").rglob(f"{parent.info.run_id}/artifacts/sweep.json")
    results = {r["name"]: r for r in json.loads(table.read_text())}
    assert {r["node_id"] for r in results.values()} == {state["nodes"][hosts.ip[survivor]]}
    attempts = {
        name: sorted(
            (r.info.status, r.info.run_id) for r in runs if r.data.tags.get("dvc_exp_name") == name
        )
        for name in ("n-1", "n-2")
    }
    assert [status for status, _ in attempts["n-1"]] == ["FINISHED", "KILLED"]
    assert [status for status, _ in attempts["n-2"]] == ["FINISHED"]
    children = {
        r.info.run_id: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert {attempts[name][0][1] for name in attempts} == set(children)
    assert {results[name]["run_id"] for name in results} == set(children)

    # A third clone gets n-1's generator from the two remotes alone, as its run recorded it.
    onnx = generator_in_a_third_clone(bare, "n-1", tmp_path / "third", env)
    assert onnx == children[attempts["n-1"][0][1]].data.tags["dcgan.onnx_sha256"]

    # No secret where Ray keeps what it shows or writes, nor in the runs.
    shown = json.dumps(state)
    assert state["jobs"] and "dcgan.sweep.trial" in shown  # the tables were read
    for secret in cluster.secrets:
        leaked = secret in shown
        assert not leaked, "a secret is in Ray's job or task table"
        for path in hosts.tmp.rglob("*"):
            if path.is_file() and not path.is_symlink():
                leaked = secret.encode() in path.read_bytes()
                assert not leaked, f"a secret is in {path}"
        with sqlite3.connect(server / "mlflow.db") as db:
            for (value,) in db.execute("SELECT value FROM tags UNION ALL SELECT value FROM params"):
                leaked = secret in str(value)
                assert not leaked, "a secret is in a run's tags or params"
