"""MLflow: one run per training, continued by export and evaluate.

The pipeline's outputs hold no run id (they are a function of params and data, so an
identical rerun gives identical files). The link is the other way round: the training run
is tagged with the SHA-256 of the generator it wrote, and export tags it with the SHA-256 of
the ONNX file, so later stages, and users, find the runs that produced a file from the
file's bytes alone (:func:`runs_for_file`), also when DVC restored it from its run-cache.

The default store is ``sqlite:///<repo>/mlflow.db`` at the *main* repository root, also
from inside DVC's temporary experiment copies (``.dvc/tmp/exps/...``), so workspace runs
and queued experiments land in one store. ``MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dcgan.errors import DcganError

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
# The UI opens an experiment on its training runs (not its GenAI view) with this tag.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# Content hashes of the artifacts a run produced: the link from a file to its runs.
GENERATOR_TAG = "dcgan.generator_sha256"  # models/generator.keras
ONNX_TAG = "dcgan.onnx_sha256"  # models/generator.onnx
MODEL_URI_TAG = "dcgan.generator_model_uri"  # the ONNX model export logged (models:/m-...)


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The main repository root: above ``.dvc/tmp/exps/<copy>`` if we run inside one."""
    here = Path(start or os.getcwd()).resolve()
    parts = here.parts
    # A queued `dvc exp run` executes in <root>/.dvc/tmp/exps/<tmp>/...; its store would be lost.
    for i in range(len(parts) - 3):
        if parts[i] == ".dvc" and parts[i + 1] == "tmp" and parts[i + 2] == "exps":
            return Path(*parts[:i])
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file() or (candidate / ".dvc").is_dir():
            return candidate
    return here


# Parallel experiments (`dvc queue start -j 2`) write one SQLite file at once: wait for the
# lock for up to a minute instead of failing with "database is locked" after SQLite's 5 s.
SQLITE_TIMEOUT_S = 60


def tracking_uri(root: str | os.PathLike[str] | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` or the SQLite store at the repository root, as an absolute URI."""
    env = os.environ.get(ENV_URI, "").strip()
    if env:
        return env
    db = (Path(root) if root else repo_root()) / "mlflow.db"
    return f"sqlite:///{db}?timeout={SQLITE_TIMEOUT_S}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (query string removed), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def _default_artifact_root(uri: str) -> str | None:
    """Keep artifacts next to a local SQLite store (MLflow would use ./mlruns of the cwd)."""
    db = sqlite_path(uri)
    return (db.parent / "mlruns").as_uri() if db else None


def store_lock(uri: str):
    """A lock file next to a SQLite store, serialising table creation and experiment
    creation across processes; a no-op for servers and databases, which do their own."""
    from contextlib import nullcontext

    from filelock import FileLock

    db = sqlite_path(uri)
    return FileLock(f"{db}.lock", timeout=SQLITE_TIMEOUT_S) if db else nullcontext()


def _enable_wal(uri: str) -> None:
    """Write-ahead logging: readers (mlflow ui) never block a training run's writes."""
    import sqlite3

    db = sqlite_path(uri)
    if db is not None and db.exists():
        with sqlite3.connect(db, timeout=SQLITE_TIMEOUT_S) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def _git(*args: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """One line of git's output, or None (no git, no repository, no such ref)."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    return _git("rev-parse", "HEAD", cwd=cwd)


class Tracker:
    """A thin handle on one MLflow run, addressed by id (no global active-run state)."""

    def __init__(self, uri: str, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=uri)

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        uri: str | None = None,
    ) -> Tracker:
        """Create a run in ``experiment`` (created on first use)."""
        from mlflow.tracking import MlflowClient

        uri = uri or tracking_uri()
        client = MlflowClient(tracking_uri=uri)
        with store_lock(uri):  # two queued experiments may create the experiment at once
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                exp_id = client.create_experiment(
                    experiment,
                    artifact_location=_artifact_location(uri, experiment),
                    tags={EXPERIMENT_KIND: MODEL_TRAINING},
                )
            else:
                exp_id = exp.experiment_id
                if exp.tags.get(EXPERIMENT_KIND) is None:  # made by an older version of ours
                    client.set_experiment_tag(exp_id, EXPERIMENT_KIND, MODEL_TRAINING)
        run = client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))
        log.info("MLflow run %s in experiment %r at %s", run.info.run_id, experiment, uri)
        return cls(uri, run.info.run_id)

    @classmethod
    def resume(cls, run_id: str, uri: str | None = None) -> Tracker | None:
        """Re-open a run by id; None (with a warning) if this store does not hold it."""
        from mlflow.exceptions import MlflowException

        tracker = cls(uri or tracking_uri(), run_id)
        try:
            tracker.client.get_run(run_id)
        except MlflowException:
            log.warning(
                "MLflow run %s is not in %s; not logging this stage to MLflow "
                "(run `dvc repro -f train` to record a new run there)",
                run_id,
                tracker.uri,
            )
            return None
        return tracker

    @classmethod
    def for_artifact(
        cls, experiment: str, tag: str, sha256: str, what: str, uri: str | None = None
    ) -> Tracker | None:
        """The newest run of ``experiment`` tagged ``tag=sha256``: the run that made (or, after
        a rerun with the same params, last made) that file. None, with a warning, if this
        store has no such run (e.g. the file came from ``dvc pull`` or another store)."""
        uri = uri or tracking_uri()
        runs = find_runs(tag, sha256, uri=uri, experiment=experiment)
        if not runs:
            log.warning(
                "no MLflow run in experiment %r at %s produced this %s (%s %s...); not "
                "logging this stage to MLflow (run `dvc repro -f train` to record one there)",
                experiment,
                uri,
                what,
                tag,
                sha256[:12],
            )
            return None
        return cls(uri, runs[0].info.run_id)

    def log_dataset(
        self, name: str, sha256: str, source_uri: str, profile: Mapping[str, Any]
    ) -> None:
        """The training data as an MLflow dataset input (context ``training``): the runs
        table's Dataset column and the run page show it. MLflow stores digests of at most
        36 characters, so the digest is the SHA-256's first 36 hex digits; the whole hash
        is in the profile."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = Dataset(
            name=name,
            digest=sha256[:36],
            source_type="local",
            source=json.dumps({"uri": source_uri}),
            profile=json.dumps({"sha256": sha256, **profile}),
        )
        tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value="training")]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags=tags)])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; a value that differs from the one already recorded is kept as a tag."""
        from mlflow.entities import Param, RunTag

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        changed = {k: str(v) for k, v in params.items() if k in existing and existing[k] != str(v)}
        for key, value in changed.items():
            log.warning(
                "MLflow run already records %s=%s; this rerun used %s (kept as tag rerun.%s)",
                key,
                existing[key],
                value,
                key,
            )
        tags = [RunTag(f"rerun.{k}", v) for k, v in changed.items()]
        if new or tags:
            self.client.log_batch(self.run_id, params=new, tags=tags)

    def metric_steps(self, key: str) -> set[int]:
        """Steps at which ``key`` is already recorded (empty for a new run)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_onnx_model(self, model, name: str, example: Any, output: Any) -> str:
        """``mlflow.onnx.log_model`` into this run, with the signature of (example, output);
        returns the logged model's URI (``models:/m-...``), which registration takes."""
        import mlflow
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.onnx.log_model(
                model,
                name=name,
                signature=infer_signature(example, output),
                input_example=example,
                # The generator is small and fast on a CPU, and onnxruntime builds without
                # CUDA (the default wheel) warn at every load when CUDA is listed first.
                onnx_execution_providers=["CPUExecutionProvider"],
            )
        return info.model_uri

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def find_runs(tag: str, value: str, uri: str | None = None, experiment: str | None = None):
    """Runs tagged ``tag=value``, newest first, in ``experiment`` or in every experiment."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        ids = [found.experiment_id] if found is not None else []
    else:
        ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not ids:
        return []
    return client.search_runs(
        ids,
        filter_string=f"tags.`{tag}` = '{value}'",
        run_view_type=ViewType.ALL,
        order_by=["attributes.start_time DESC"],
    )


def runs_for_file(path: str | os.PathLike[str], uri: str | None = None):
    """The MLflow runs that produced ``path`` (generator.keras or generator.onnx), newest
    first, found by the file's SHA-256 alone."""
    from dcgan.files import sha256_file

    digest = sha256_file(path)
    runs = {}
    for tag in (ONNX_TAG, GENERATOR_TAG):
        for run in find_runs(tag, digest, uri=uri):
            runs.setdefault(run.info.run_id, run)
    return sorted(runs.values(), key=lambda r: r.info.start_time, reverse=True)


_checked: set[str] = set()  # URIs found usable in this process


def check_tracking_store(uri: str | None = None, timeout: float = 5.0) -> str:
    """Fail fast, before any training, if the tracking store cannot be reached or written.

    Returns the URI. MLflow's own client retries an unreachable server for minutes, so a
    server is probed once on its /health endpoint with a short timeout.
    """
    import urllib.error
    import urllib.request

    uri = uri or tracking_uri()
    if uri in _checked:  # the train stage checks before TensorFlow loads, train() again
        return uri
    fix = f"start the server, or unset {ENV_URI} to use ./mlflow.db"
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as reply:
                if reply.status != 200:
                    raise urllib.error.URLError(f"HTTP {reply.status}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DcganError(
                f"MLflow tracking server {uri} does not answer ({reason}); {fix}"
            ) from None
        return uri
    db = sqlite_path(uri)
    if db is not None:
        folder = db.parent
        if (
            not folder.is_dir()
            or not os.access(folder, os.W_OK)
            or (db.exists() and not os.access(db, os.W_OK))
        ):
            raise DcganError(
                f"MLflow tracking store {uri} cannot be written (check that "
                f"{folder} exists and is writable), or set {ENV_URI}"
            )
    try:
        from mlflow.tracking import MlflowClient

        with store_lock(uri):  # the first use creates the tables: once, not once per process
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
            _enable_wal(uri)
    except Exception as exc:  # noqa: BLE001 - MLflow wraps store errors in many types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DcganError(f"MLflow tracking store {uri} is not usable ({first}); {fix}") from None
    _checked.add(uri)
    return uri


def _artifact_location(uri: str, experiment: str) -> str | None:
    root = _default_artifact_root(uri)
    return f"{root}/{experiment}" if root else None


def run_tags(entry_point: str, data_source: str | None = None) -> dict[str, str]:
    """MLflow's standard source tags (what the UI's Source column and run page read), the DVC
    experiment (set by `dvc exp run`) and the data source.

    Under `dvc exp run`, the commit is the experiment's baseline: the code that ran is that
    commit plus the params DVC applied.
    """
    from mlflow.entities import SourceType
    from mlflow.utils import mlflow_tags

    root = repo_root()
    tags = {
        mlflow_tags.MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL),
        mlflow_tags.MLFLOW_SOURCE_NAME: entry_point,
    }
    commit = os.environ.get("DVC_EXP_BASELINE_REV") or git_commit(root)
    if commit:
        tags[mlflow_tags.MLFLOW_GIT_COMMIT] = commit
    branch = _git("symbolic-ref", "--short", "-q", "HEAD", cwd=root)
    if branch:
        tags[mlflow_tags.MLFLOW_GIT_BRANCH] = branch
    remote = _git("remote", "get-url", "origin", cwd=root)
    if remote:
        tags[mlflow_tags.MLFLOW_GIT_REPO_URL] = remote
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc_exp_baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    if data_source:
        tags["data_source"] = data_source
    return tags


def run_name(readable: str) -> str:
    """The DVC experiment's name under `dvc exp run`, else ``readable``. Always given: left to
    MLflow, the name is drawn from Python's `random`, which the seeded stages make repeat."""
    return os.environ.get("DVC_EXP_NAME") or readable
