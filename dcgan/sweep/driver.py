"""The sweep's driver: check everything a trial needs, push what trials share, place the trials
on a Ray cluster (a local one by default), and collect them into one table, printed and kept in
the MLflow parent run."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from dcgan.config import PARAMS_FILE, load_config
from dcgan.errors import DcganError
from dcgan.sweep import checks, grid, trial
from dcgan.sweep.summary import table
from dcgan.tracking.store import ENV_URI

# The one scheduling setting: a node runs as many trials at once as it has of this resource.
# `dcgan sweep` alone gives its local node 1; a cluster's workers say theirs when they join
# (`ray start --address ... --resources '{"dcgan_trial": 1}'`), so a trial gets all the cores.
TRIAL_RESOURCE = "dcgan_trial"
# A trial whose node dies is run again elsewhere, this many times.
MAX_RETRIES = 3
# Seconds a cancelled trial has to stop its processes before Ray kills its worker.
CANCEL_GRACE_S = 30
# The local cluster's object store: trials return a few numbers, never arrays.
OBJECT_STORE_BYTES = 100 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Plan:
    """A sweep that passed every check: what the trials run, where from, and where to."""

    name: str
    trials: list[grid.Trial]
    commit: str
    git_url: str
    dvc_remote: str
    tracking_uri: str


def plan(
    set_params: list[str],
    name: str | None,
    address: str | None,
    git_remote: str,
    dvc_remote: str | None,
    repo: Path,
) -> Plan:
    """Every refusal, cheapest first, before anything is pushed or started."""
    commit = checks.git(repo, "rev-parse", "HEAD").stdout.strip()
    name = name or f"sweep-{commit[:7]}"
    trials = grid.expand(set_params, name)
    grid.check(trials, repo / PARAMS_FILE)
    uri = _tracking(address)
    checks.clean_workspace(repo)
    url = checks.remote_url(repo, git_remote)
    checks.pushed_commit(repo, git_remote, commit)
    checks.free_names(repo, git_remote, [t.name for t in trials])
    remote = checks.dvc_remote(repo, dvc_remote)
    checks.fixed_stages_recorded(repo, commit)
    return Plan(name, trials, commit, url, remote, uri)


def sweep(todo: Plan, address: str | None, repo: Path) -> list[dict]:
    """Run a checked sweep and return its trials' results; a trial that failed fails the
    command (after the table, with the count)."""
    print(f"sweep {todo.name}: {len(todo.trials)} trials at {todo.commit[:7]}", flush=True)
    print(grid.describe(todo.trials), flush=True)
    _push_fixed_stages(repo, todo.dvc_remote)
    if address is None:
        # Local workers inherit this environment: the store resolved here, not the default
        # one of each trial's temporary clone.
        os.environ[ENV_URI] = todo.tracking_uri
    ray = _connect(address)
    from dcgan.tracking.tracker import Tracker

    parent = Tracker.start(
        load_config("train", repo / PARAMS_FILE).experiment,
        run_name=todo.name,
        tags={
            "dcgan.sweep": todo.name,
            "dcgan.sweep.grid": json.dumps([list(t.overrides) for t in todo.trials]),
            "dcgan.sweep.commit": todo.commit,
            "ray.version": ray.__version__,
        },
        uri=todo.tracking_uri,
    )
    specs = [
        trial.TrialSpec(
            t.name,
            t.overrides,
            todo.git_url,
            todo.commit,
            todo.dvc_remote,
            todo.name,
            parent.run_id,
        )
        for t in todo.trials
    ]
    results, status = _run_all(ray, specs)
    text = table(results)
    print(text, flush=True)
    parent.client.log_text(parent.run_id, text, "sweep.md")
    parent.client.log_dict(parent.run_id, results, "sweep.json")
    failed = [r for r in results if r["status"] != "done"]
    parent.finish("FAILED" if failed and status == "FINISHED" else status)
    if address is None:
        ray.shutdown()
    if status == "KILLED":
        raise KeyboardInterrupt
    if failed:
        raise DcganError(
            f"{len(failed)} of {len(specs)} trials failed ({failed[0]['name']}: "
            f"{failed[0]['cause']}); the table above has each cause"
        )
    return results


def _tracking(address: str | None) -> str:
    """The tracking store, checked; one machine's SQLite store only for a local cluster."""
    from dcgan.tracking.store import check_tracking_store, sqlite_path, tracking_uri

    uri = tracking_uri()
    if address is not None and (sqlite_path(uri) is not None or uri.startswith("file:")):
        raise DcganError(
            "a sweep across machines needs a tracking server they all reach, not "
            f"{uri.split('?')[0]}; "
            f'set {ENV_URI} (eval "$(./run stack env)") here and on every node'
        )
    return check_tracking_store(uri)


def _push_fixed_stages(repo: Path, remote: str) -> None:
    """Build (when they are not) and push the outputs of the stages a trial pulls."""
    for command in (["repro", *trial.FIXED_STAGES], ["push", "-r", remote, *trial.FIXED_STAGES]):
        done = checks.dvc(repo, *command)
        if done.returncode != 0:
            raise DcganError(f"dvc {' '.join(command)} failed: {checks.last_line(done)}")


def _connect(address: str | None):
    """Ray, joined to ``address`` or started here. On Linux a local Ray takes the machine's
    interface address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps it on 127.0.0.1."""
    import ray

    if address is None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray.init(
            num_cpus=os.cpu_count(),
            resources={TRIAL_RESOURCE: 1},
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise DcganError(
                f"cannot join the Ray cluster at {address} ({exc}); is it up?"
            ) from None
        slots = ray.cluster_resources().get(TRIAL_RESOURCE, 0)
        if slots < 1:
            ray.shutdown()
            raise DcganError(
                f"no node of the cluster at {address} offers {TRIAL_RESOURCE}; start each "
                f"worker with ray start --address {address} --resources "
                f"'{{\"{TRIAL_RESOURCE}\": 1}}'"
            )
    return ray


def _run_all(ray, specs: list[trial.TrialSpec]) -> tuple[list[dict], str]:
    """Every trial's result, in the order they finish; the parent run's status."""
    task = ray.remote(num_cpus=0, resources={TRIAL_RESOURCE: 1}, max_retries=MAX_RETRIES)(trial.run)
    pending = {task.remote(spec): spec for spec in specs}
    results: list[dict] = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(done[0])
            try:
                found = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # its node died more than MAX_RETRIES times
                text = str(exc).strip().splitlines()
                found = {"name": spec.name, "status": "failed", "cause": (text or ["lost"])[-1]}
                found["overrides"] = list(spec.overrides)
            results.append(found)
            _report(found, len(results), len(specs))
    except KeyboardInterrupt:
        _cancel(ray, list(pending))
        return results, "KILLED"
    return results, "FINISHED"


def _report(found: dict, k: int, n: int) -> None:
    what = f"FCD {found['fcd']:.2f}" if found["status"] == "done" else found["cause"]
    print(f"[{k}/{n}] {found['name']}: {what}", flush=True)


def _cancel(ray, refs: list) -> None:
    """Ctrl-C: each running trial stops its process group (KeyboardInterrupt in the task);
    what has not stopped in ``CANCEL_GRACE_S`` has its worker killed."""
    for ref in refs:
        ray.cancel(ref)
    deadline = time.monotonic() + CANCEL_GRACE_S
    left = refs
    while left and time.monotonic() < deadline:
        _, left = ray.wait(left, num_returns=len(left), timeout=1)
    for ref in left:
        ray.cancel(ref, force=True)
