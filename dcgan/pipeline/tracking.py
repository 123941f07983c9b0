"""MLflow: one run per training, continued by export and evaluate, through :class:`Tracker`, a
client addressed by run id. Where the record lives is dcgan.pipeline.store; how a file finds
its runs is dcgan.pipeline.lineage."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from dcgan.pipeline.lineage import find_runs
from dcgan.pipeline.store import (
    artifact_location,
    mlflow_uris,
    safe_uri,
    store_lock,
    tracking_uri,
)

log = logging.getLogger(__name__)

# The UI opens an experiment on its training runs (not its GenAI view) with this tag.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


class Tracker:
    """A thin handle on one MLflow run, addressed by id: no active run or URI is left set in
    MLflow's process-wide state (the one fluent call runs inside :func:`mlflow_uris`)."""

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
                    artifact_location=artifact_location(uri, experiment),
                    tags={EXPERIMENT_KIND: MODEL_TRAINING},
                )
            else:
                exp_id = exp.experiment_id
                if exp.tags.get(EXPERIMENT_KIND) is None:  # made by an older version of ours
                    client.set_experiment_tag(exp_id, EXPERIMENT_KIND, MODEL_TRAINING)
        run = client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))
        log.info("MLflow run %s in experiment %r at %s", run.info.run_id, experiment, safe_uri(uri))
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
                safe_uri(tracker.uri),
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

        with mlflow_uris(self.uri), mlflow.start_run(run_id=self.run_id):
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
