"""Lineage: from a model file to the MLflow runs that produced it, and the source tags a run
carries (git commit, entry point, DVC experiment, data source).

The pipeline's outputs hold no run id (they are a function of params and data, so an
identical rerun gives identical files). The link is the other way round: the training run
is tagged with the SHA-256 of the generator it wrote, and export tags it with the SHA-256 of
the ONNX file, so later stages, and users, find the runs that produced a file from the
file's bytes alone (:func:`runs_for_file`), also when DVC restored it from its run-cache.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import Any

from dcgan.files import sha256_file
from dcgan.tracking.retry import call_store
from dcgan.tracking.store import repo_root

# Content hashes of the artifacts a run produced: the link from a file to its runs.
GENERATOR_TAG = "dcgan.generator_sha256"  # the generator .keras file
ONNX_TAG = "dcgan.onnx_sha256"  # the generator .onnx file
MODEL_URI_TAG = "dcgan.generator_model_uri"  # the ONNX model export logged (models:/m-...)
# The train stage's scores of G in its run: "quality/fcd", ... (the evaluate stage logs its own
# "fcd" over more samples into the same run); MLflow's chart view groups them under "quality".
QUALITY_PREFIX = "quality/"


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


def experiment_of(params: Mapping[str, Any]) -> str | None:
    """The MLflow experiment a generator was trained in, from the flat params its record
    carries: training.json's ``params``, or the ONNX file's ``params`` metadata."""
    return params.get("train.experiment") or None


def find_runs(tag: str, value: str, uri: str, experiment: str | None = None):
    """Runs tagged ``tag=value``, newest first, in ``experiment`` or in every experiment,
    at the store ``uri`` (one try: callers go through dcgan.tracking.retry)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
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


def runs_for_file(path: str | os.PathLike[str], uri: str):
    """The MLflow runs at ``uri`` that produced ``path`` (generator.keras or generator.onnx),
    newest first, found by the file's SHA-256 alone."""
    digest = sha256_file(path)
    runs = {}
    for tag in (ONNX_TAG, GENERATOR_TAG):
        for run in call_store(uri, "finding the file's runs", find_runs, tag, digest, uri):
            runs.setdefault(run.info.run_id, run)
    return sorted(runs.values(), key=lambda r: r.info.start_time, reverse=True)


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
