"""MLflow: one run per training, continued by export and evaluate, through :class:`Tracker`, a
client addressed by run id. Where the record lives is dcgan.tracking.store; how a file finds
its runs is dcgan.tracking.lineage; every call goes through dcgan.tracking.retry's budget.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dcgan.tracking import packaging
from dcgan.tracking.lineage import find_runs
from dcgan.tracking.retry import bounded_requests, call_store, cause, retry_seconds
from dcgan.tracking.store import artifact_location, safe_uri, store_lock, tracking_uri
from dcgan.tracking.watcher import Watcher, close_abandoned

log = logging.getLogger(__name__)

# The UI opens an experiment on its training runs (not its GenAI view) with this tag.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"

T = TypeVar("T")


class Tracker:
    """A thin handle on one MLflow run, addressed by id: no active run or URI is left set in
    MLflow's process-wide state (the one fluent call runs inside :func:`mlflow_uris`). Every
    call goes through :func:`call_store`: bounded in time, then :class:`TrackerUnavailable`."""

    def __init__(self, uri: str, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        retry_seconds()  # a bad budget fails before anything is logged
        self.uri = uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=uri)
        self._watcher: Watcher | None = None

    def _call(self, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return call_store(self.uri, what, fn, *args, **kwargs)

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        uri: str,
    ) -> Tracker:
        """Create a run in ``experiment`` (created on first use) at the store ``uri``."""
        tracker = cls(uri, "")
        exp_id = tracker._call("creating the experiment", _experiment_id, tracker, experiment)
        run = tracker._call(
            "creating the run",
            tracker.client.create_run,
            exp_id,
            run_name=run_name,
            tags=dict(tags or {}),
        )
        tracker.run_id = run.info.run_id
        log.info("MLflow run %s in experiment %r at %s", tracker.run_id, experiment, safe_uri(uri))
        if uri.lower().startswith(("http://", "https://")):
            log.info("view it at %s", run_link(uri, exp_id, tracker.run_id))
        return tracker

    @classmethod
    def resume(cls, run_id: str, uri: str) -> Tracker | None:
        """Re-open a run by id, RUNNING again; None (with a warning) if this store does not
        hold it. A store that does not answer raises :class:`TrackerUnavailable`."""
        from mlflow.exceptions import MlflowException

        tracker = cls(uri, run_id)
        try:
            run = tracker._call("reading the run", tracker.client.get_run, run_id)
        except MlflowException:
            log.warning(
                "MLflow run %s is not in %s; not logging this stage to MLflow "
                "(run `dvc repro -f train` to record a new run there)",
                run_id,
                safe_uri(tracker.uri),
            )
            return None
        if run.info.status != "RUNNING":  # closed as FAILED when the store went away
            tracker._call("reopening the run", tracker.client.update_run, run_id, status="RUNNING")
        return tracker

    @classmethod
    def for_artifact(
        cls, experiment: str | None, tag: str, sha256: str, what: str, uri: str | None = None
    ) -> Tracker | None:
        """The newest run of ``experiment`` tagged ``tag=sha256``: the run that made (or, after
        a rerun with the same params, last made) that file. None, with a warning, if the file
        names no experiment or this store has no such run (e.g. the file came from ``dvc
        pull`` or another store). ``uri``: the store, by default the one this process
        resolves (:func:`dcgan.tracking.store.tracking_uri`)."""
        uri = uri or tracking_uri()
        if not experiment:
            log.warning("the %s names no MLflow experiment; not logging this stage to MLflow", what)
            return None
        runs = call_store(
            uri, "finding the run", find_runs, tag, sha256, uri=uri, experiment=experiment
        )
        if not runs:
            log.warning(
                "no MLflow run in experiment %r at %s produced this %s (%s %s...); not "
                "logging this stage to MLflow (run `dvc repro -f train` to record one there)",
                experiment,
                safe_uri(uri),
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
        inputs = [DatasetInput(dataset, tags=tags)]
        try:
            self._call("logging the data set", self.client.log_inputs, self.run_id, inputs)
        except Exception as exc:
            if not _lost_the_race_to_add(exc):
                raise
            # The store looks a data set up and adds it if missing, in two steps: another
            # machine's run added the same one in between. Now the lookup finds it.
            self._call("logging the data set", self.client.log_inputs, self.run_id, inputs)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self._call("setting tags", self.client.log_batch, self.run_id, tags=batch)

    def tags(self) -> dict[str, str]:
        return self._call("reading the run", self.client.get_run, self.run_id).data.tags

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; a value that differs from the one already recorded is kept as a tag."""
        from mlflow.entities import Param, RunTag

        run = self._call("reading the run", self.client.get_run, self.run_id)
        existing = run.data.params
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
            self._call("logging params", self.client.log_batch, self.run_id, params=new, tags=tags)

    def metric_steps(self, key: str) -> set[int]:
        """Steps at which ``key`` is already recorded (empty for a new run)."""
        history = self._call(
            "reading the metrics", self.client.get_metric_history, self.run_id, key
        )
        return {m.step for m in history}

    def artifact_names(self, folder: str) -> set[str]:
        """File names already logged under ``folder`` of the run's artifacts."""
        found = self._call("listing artifacts", self.client.list_artifacts, self.run_id, folder)
        return {f.path.rsplit("/", 1)[-1] for f in found}

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        self._call("logging metrics", self.client.log_batch, self.run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._call(
            f"uploading {os.path.basename(path)}",
            self.client.log_artifact,
            self.run_id,
            str(path),
            artifact_path,
        )

    def log_onnx_model(self, model: Any, name: str, example: Any, output: Any) -> str:
        """The ONNX generator as an MLflow model of this run (dcgan.tracking.packaging);
        returns its ``models:/m-...`` URI."""
        return packaging.log_onnx_model(
            self.uri, self.client, self.run_id, model, name, example, output
        )

    def finish(self, status: str = "FINISHED") -> None:
        self._call("closing the run", self.client.set_terminated, self.run_id, status=status)

    def finish_quietly(self, status: str) -> None:
        """Close the run on the way out of an error: one try, a warning if the store does
        not take it (the error being raised matters more than the run's status)."""
        try:
            with bounded_requests(5):
                self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:  # noqa: BLE001 - best effort, see above
            log.warning(
                "could not mark MLflow run %s %s at %s (%s)",
                self.run_id,
                status,
                safe_uri(self.uri),
                cause(exc),
            )

    def watch(self) -> None:
        """Start the run's dead-process watcher (dcgan.tracking.watcher), once."""
        if self._watcher is None:
            self._watcher = Watcher.start(self.uri, self.run_id)

    def release(self) -> None:
        """Tell the watcher this process is done with the run: it exits without touching it."""
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.release()

    def close_abandoned(self) -> list[str]:
        """Mark KILLED this machine's other RUNNING runs of this run's experiment whose
        process is gone; returns their ids (see dcgan.tracking.watcher)."""
        return close_abandoned(self.uri, self.client, self.run_id)


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI's page of a run on the server at ``uri``, without any credentials."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


# A store's refusal of a second row for the same data set (experiment, name, digest): in
# PostgreSQL's words (through a server) and in SQLite's.
DUPLICATE_DATA_SET = re.compile(r'"dataset_pk"|UNIQUE constraint failed: datasets\.')


def _lost_the_race_to_add(exc: BaseException) -> bool:
    return DUPLICATE_DATA_SET.search(str(exc)) is not None


def _experiment_id(tracker: Tracker, experiment: str) -> str:
    """The experiment's id, created on first use (with its artifact location and UI tag)."""
    from mlflow.exceptions import MlflowException

    client, uri = tracker.client, tracker.uri
    with store_lock(uri):  # this machine's queued experiments, which may start at once
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            try:
                return client.create_experiment(
                    experiment,
                    artifact_location=artifact_location(uri, experiment),
                    tags={EXPERIMENT_KIND: MODEL_TRAINING},
                )
            except MlflowException as exc:
                # Another machine's first run created it between our lookup and our create:
                # a shared server's experiment has one name, so theirs is ours.
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    raise
        if exp.tags.get(EXPERIMENT_KIND) is None:  # made by an older version of ours
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return exp.experiment_id
