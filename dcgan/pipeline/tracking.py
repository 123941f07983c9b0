"""MLflow: one run per training, continued by export and evaluate, through :class:`Tracker`, a
client addressed by run id. Where the record lives is dcgan.pipeline.store; how a file finds
its runs is dcgan.pipeline.lineage.

Every call to the store is retried for at most ``DCGAN_TRACKING_RETRY_SECONDS`` (default 60)
and then raises :class:`TrackerUnavailable`: MLflow's own client retries a dead server for
~8 minutes, so its HTTP retries are switched off for our calls and each request is bounded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from dcgan.errors import DcganError
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

RETRY_ENV = "DCGAN_TRACKING_RETRY_SECONDS"
RETRY_SECONDS = 60.0
REQUEST_TIMEOUT_S = 10  # one HTTP request; a server that hangs costs at most this per try
# MLflow error codes that a retry cannot fix (the run or key is missing, the request is wrong,
# the credentials are): raised at once. Anything else (a refused connection, a timeout, a 5xx,
# a locked or unreachable database) is retried until the budget runs out.
PERMANENT = {
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "INVALID_STATE",
    "NOT_FOUND",
}

T = TypeVar("T")


class TrackerUnavailable(DcganError):
    """The tracking store did not answer within the retry budget."""


def retry_seconds() -> float:
    """The retry budget: ``$DCGAN_TRACKING_RETRY_SECONDS`` or 60."""
    text = os.environ.get(RETRY_ENV, "").strip()
    if not text:
        return RETRY_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:  # also false for nan
        raise DcganError(
            f"{RETRY_ENV}={text!r} is not a number of seconds in (0, 3600]; "
            f"set it to e.g. 60, or unset it for the default {RETRY_SECONDS:.0f}"
        )
    return value


@contextmanager
def _bounded_requests(timeout: int) -> Iterator[None]:
    """One try per call with a request timeout, for the block; the environment is put back."""
    names = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        # Closing a run on a server prints "View run at <tracking URI>", password and all;
        # Tracker.start logs the link without credentials instead.
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _transient(exc: BaseException) -> bool:
    """Worth a retry: the store did not answer, or answered with a server-side error. A
    client error (see PERMANENT), our own errors and programming errors are raised at once."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code not in PERMANENT
    if isinstance(exc, OSError):  # also requests' connection errors and timeouts
        return True
    try:
        from sqlalchemy.exc import InterfaceError, OperationalError
    except ImportError:  # pragma: no cover - MLflow installs SQLAlchemy
        return False
    return isinstance(exc, (InterfaceError, OperationalError))


def _cause(exc: BaseException) -> str:
    """A short reason, without URLs (MLflow's messages repeat the whole request URL)."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    if "timeout" in text.lower() or "timed out" in text.lower():
        return "timed out"
    status = re.search(r"error code (\d{3})", text)
    if status:
        return f"HTTP {status.group(1)}"
    return type(exc).__name__


def call_store(uri: str, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` against the store at ``uri``, retried with backoff for at most
    :func:`retry_seconds`; then :class:`TrackerUnavailable`, naming the store (password
    masked), what was being done and why."""
    budget = retry_seconds()
    deadline = time.monotonic() + budget
    delay, tries = 0.5, 0
    while True:
        left = deadline - time.monotonic()
        try:
            with _bounded_requests(max(1, min(REQUEST_TIMEOUT_S, int(left)))):
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - MLflow wraps store errors in many types
            if not _transient(exc):
                raise
            tries += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TrackerUnavailable(
                    f"MLflow tracking store {safe_uri(uri)} did not answer for {budget:.0f} s "
                    f"({what}: {_cause(exc)}, {tries} tries; {RETRY_ENV} sets the budget)"
                ) from None
            log.warning(
                "MLflow tracking store %s: %s failed (%s); retrying for up to %.0f s more",
                safe_uri(uri),
                what,
                _cause(exc),
                left,
            )
            time.sleep(min(delay, left))
            delay = min(delay * 2, 8.0)


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
        self._watcher: tuple[subprocess.Popen[bytes], int] | None = None

    def _call(self, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return call_store(self.uri, what, fn, *args, **kwargs)

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        uri: str | None = None,
    ) -> Tracker:
        """Create a run in ``experiment`` (created on first use)."""
        uri = uri or tracking_uri()
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
    def resume(cls, run_id: str, uri: str | None = None) -> Tracker | None:
        """Re-open a run by id, RUNNING again; None (with a warning) if this store does not
        hold it. A store that does not answer raises :class:`TrackerUnavailable`."""
        from mlflow.exceptions import MlflowException

        tracker = cls(uri or tracking_uri(), run_id)
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
        cls, experiment: str, tag: str, sha256: str, what: str, uri: str | None = None
    ) -> Tracker | None:
        """The newest run of ``experiment`` tagged ``tag=sha256``: the run that made (or, after
        a rerun with the same params, last made) that file. None, with a warning, if this
        store has no such run (e.g. the file came from ``dvc pull`` or another store)."""
        uri = uri or tracking_uri()
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
        self._call(
            "logging the data set",
            self.client.log_inputs,
            self.run_id,
            datasets=[DatasetInput(dataset, tags=tags)],
        )

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

    def log_onnx_model(self, model, name: str, example: Any, output: Any) -> str:
        """The ONNX generator as an MLflow model linked to this run, with the signature of
        (example, output) and dcgan.pipeline.serving as its pyfunc loader (the served model refuses
        oversized and non-finite batches); returns the logged model's URI
        (``models:/m-...``), which registration takes. The run is named, not started: a
        finished run stays FINISHED whatever happens here (``start_run`` would set it
        RUNNING until the block ends)."""
        import mlflow.onnx
        import numpy as np
        from mlflow.models import Model, infer_signature

        experiment_id = self._call(
            "reading the run", self.client.get_run, self.run_id
        ).info.experiment_id

        def log_model() -> str:
            with mlflow_uris(self.uri, experiment_id=experiment_id):
                info = Model.log(
                    artifact_path=None,
                    name=name,
                    flavor=_CheckedOnnxFlavor,
                    flavor_name="onnx",
                    run_id=self.run_id,
                    onnx_model=model,
                    signature=infer_signature(example, output),
                    input_example=example,
                    # The generator is small and fast on a CPU, and onnxruntime builds
                    # without CUDA (the default wheel) warn at every load when CUDA is listed
                    # first.
                    onnx_execution_providers=["CPUExecutionProvider"],
                    # One self-contained model.onnx, the same bytes as generator.onnx (the
                    # default splits the weights into a side file).
                    save_as_external_data=False,
                    # What the pyfunc loader imports, at the versions that made and checked
                    # the model (MLflow adds itself). MLflow's inference would list the whole
                    # environment, TensorFlow and DVC included, and takes seconds a run.
                    pip_requirements=[
                        *mlflow.onnx.get_default_pip_requirements(),
                        f"numpy=={np.__version__}",
                    ],
                )
            return info.model_uri

        return self._call("logging the ONNX model", log_model)

    def finish(self, status: str = "FINISHED") -> None:
        self._call("closing the run", self.client.set_terminated, self.run_id, status=status)

    def finish_quietly(self, status: str) -> None:
        """Close the run on the way out of an error: one try, a warning if the store does
        not take it (the error being raised matters more than the run's status)."""
        try:
            with _bounded_requests(5):
                self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:  # noqa: BLE001 - best effort, see above
            log.warning(
                "could not mark MLflow run %s %s at %s (%s)",
                self.run_id,
                status,
                safe_uri(self.uri),
                _cause(exc),
            )

    def watch(self) -> None:
        """Start a watcher process that marks the run KILLED if this process dies without
        :meth:`release` (SIGKILL, the OOM killer): then no later process may ever reopen it
        (a rerun restored from DVC's run-cache trains nothing). The watcher sits in its own
        session (a process-group kill does not take it along), blocks on a pipe whose only
        writer is this process, and imports MLflow only if the pipe ends without a word.
        It leaves the run alone if another process has taken it over (its pid tag)."""
        if self._watcher is not None:
            return
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from dcgan.pipeline.tracking import _watch; _watch()"],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:  # the next train on this machine still closes the run
            os.close(write)
            log.warning("no watcher for MLflow run %s (%s)", self.run_id, exc)
            return
        finally:
            os.close(read)
        # The store URI may hold a password: it goes through the pipe, not the command line.
        order = {"uri": self.uri, "run_id": self.run_id, "pid": os.getpid()}
        os.write(write, (json.dumps(order) + "\n").encode())
        self._watcher = (proc, write)

    def release(self) -> None:
        """Tell the watcher this process is done with the run (finished, failed or left
        for a resume): it exits without touching the run."""
        if self._watcher is None:
            return
        proc, write = self._watcher
        self._watcher = None
        try:
            os.write(write, _RELEASED)
        finally:
            os.close(write)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - it exits on the word
            proc.kill()

    def close_abandoned(self) -> list[str]:
        """Mark KILLED this machine's other RUNNING runs of this run's experiment whose
        process is gone (killed before its first checkpoint, so nothing will resume them);
        returns their ids. Runs of other machines, and of older versions (no pid tag), are
        left alone."""
        from mlflow.entities import RunStatus

        experiment_id = self._call(
            "reading the run", self.client.get_run, self.run_id
        ).info.experiment_id
        host = socket.gethostname()
        runs = self._call(
            "finding abandoned runs",
            self.client.search_runs,
            [experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        )
        closed = []
        for run in runs:
            pid = run.data.tags.get(PID_TAG, "")
            if run.info.run_id == self.run_id or not pid.isdigit() or _alive(int(pid)):
                continue
            self._call(
                "closing an abandoned run",
                self.client.set_terminated,
                run.info.run_id,
                status=RunStatus.to_string(RunStatus.KILLED),
            )
            log.warning(
                "MLflow run %s was left RUNNING by process %s, which is gone; marked KILLED",
                run.info.run_id,
                pid,
            )
            closed.append(run.info.run_id)
        return closed


class _CheckedOnnxFlavor:
    """``mlflow.onnx``'s save_model, with dcgan.pipeline.serving copied into the model's
    code/ folder and made the pyfunc loader (what ``Model.log`` takes as a flavor)."""

    LOADER = "dcgan_serving"

    @classmethod
    def save_model(cls, path: str, mlflow_model: Any, **kwargs: Any) -> None:
        import shutil
        import tempfile
        from pathlib import Path

        import mlflow.onnx
        from mlflow.pyfunc import FLAVOR_NAME, MAIN

        from dcgan.pipeline import serving

        with tempfile.TemporaryDirectory() as tmp:
            loader = Path(tmp) / f"{cls.LOADER}.py"
            shutil.copyfile(serving.__file__, loader)
            mlflow.onnx.save_model(
                path=path, mlflow_model=mlflow_model, code_paths=[str(loader)], **kwargs
            )
        mlflow_model.flavors[FLAVOR_NAME][MAIN] = cls.LOADER
        mlflow_model.save(os.path.join(path, "MLmodel"))


HOST_TAG, PID_TAG = "dcgan.host", "dcgan.pid"


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI's page of a run on the server at ``uri``, without any credentials."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def process_tags() -> dict[str, str]:
    """Which process on which machine writes a run: lets the next run close it if it died."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


_RELEASED = b"released\n"


def _watch() -> None:
    """The watcher's body (see :meth:`Tracker.watch`): one JSON line, then wait for EOF."""
    order = json.loads(sys.stdin.buffer.readline())
    rest = sys.stdin.buffer.read()  # EOF: the writer released the run, or died
    if rest == _RELEASED:
        return
    from mlflow.entities import RunStatus

    tracker = Tracker(order["uri"], order["run_id"])
    run = tracker._call("reading the run", tracker.client.get_run, tracker.run_id)
    if run.info.status == "RUNNING" and run.data.tags.get(PID_TAG) == str(order["pid"]):
        tracker._call(
            "closing the run of a dead process",
            tracker.client.set_terminated,
            tracker.run_id,
            status=RunStatus.to_string(RunStatus.KILLED),
        )


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # an earlier process that had our pid: it is gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _experiment_id(tracker: Tracker, experiment: str) -> str:
    """The experiment's id, created on first use (with its artifact location and UI tag)."""
    client, uri = tracker.client, tracker.uri
    with store_lock(uri):  # two queued experiments may create the experiment at once
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return client.create_experiment(
                experiment,
                artifact_location=artifact_location(uri, experiment),
                tags={EXPERIMENT_KIND: MODEL_TRAINING},
            )
        if exp.tags.get(EXPERIMENT_KIND) is None:  # made by an older version of ours
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return exp.experiment_id
