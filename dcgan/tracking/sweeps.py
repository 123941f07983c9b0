"""A sweep's trials in MLflow: each trial's train run nested under the sweep's run (MLflow
nests by the ``mlflow.parentRunId`` tag), and the RUNNING run of an attempt that died with its
node closed, so that a trial ends with one FINISHED run."""

from __future__ import annotations

from collections.abc import Mapping

from dcgan.tracking.retry import call_store

PARENT_TAG = "mlflow.parentRunId"
EXP_NAME_TAG = "dvc_exp_name"  # lineage.run_tags sets it from DVC_EXP_NAME


def _runs(client, experiment: str, status: str) -> list:
    ids = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.{EXP_NAME_TAG} = '{experiment}' and attributes.status = '{status}'"
    return client.search_runs(ids, filter_string=query)


def close_abandoned_attempts(uri: str, experiment: str) -> list[str]:
    """Mark KILLED every RUNNING run of the DVC experiment ``experiment``; their ids."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = call_store(uri, "finding earlier attempts", _runs, client, experiment, "RUNNING")
    for run in runs:
        call_store(uri, "closing an attempt", client.set_terminated, run.info.run_id, "KILLED")
    return [run.info.run_id for run in runs]


def adopt(uri: str, experiment: str, parent_run_id: str, tags: Mapping[str, str]) -> str | None:
    """Nest the FINISHED run of the DVC experiment ``experiment`` under ``parent_run_id``, with
    ``tags``; its id, or None if the store holds no such run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = call_store(uri, "finding the trial's run", _runs, client, experiment, "FINISHED")
    if not runs:
        return None
    run_id = runs[0].info.run_id
    for key, value in {PARENT_TAG: parent_run_id, **tags}.items():
        call_store(uri, "tagging the trial's run", client.set_tag, run_id, key, value)
    return run_id
