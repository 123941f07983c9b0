"""The dead-process watcher: a run whose process dies (SIGKILL, the OOM killer) without a word
is marked KILLED, so no later process reopens it (a rerun restored from DVC's run-cache trains
nothing); and a run left RUNNING by a process that is gone is closed by the next training."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from typing import Any

from dcgan.tracking.retry import call_store

log = logging.getLogger(__name__)

HOST_TAG, PID_TAG = "dcgan.host", "dcgan.pid"
_RELEASED = b"released\n"


def process_tags() -> dict[str, str]:
    """Which process on which machine writes a run: lets the next run close it if it died."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


class Watcher:
    """A process that marks the run KILLED if this process dies without :meth:`release`. It
    sits in its own session (a process-group kill does not take it along), blocks on a pipe
    whose only writer is this process, and imports MLflow only if the pipe ends without a
    word. It leaves the run alone if another process has taken it over (its pid tag)."""

    def __init__(self, proc: subprocess.Popen[bytes], write: int) -> None:
        self._proc, self._write = proc, write

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    def start(cls, uri: str, run_id: str) -> Watcher | None:
        """The watcher of ``run_id`` at ``uri``; None, with a warning, if it cannot start
        (the next train on this machine still closes the run)."""
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from dcgan.tracking.watcher import main; main()"],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write)
            log.warning("no watcher for MLflow run %s (%s)", run_id, exc)
            return None
        finally:
            os.close(read)
        # The store URI may hold a password: it goes through the pipe, not the command line.
        order = {"uri": uri, "run_id": run_id, "pid": os.getpid()}
        os.write(write, (json.dumps(order) + "\n").encode())
        return cls(proc, write)

    def release(self) -> None:
        """This process is done with the run (finished, failed or left for a resume): the
        watcher exits without touching it."""
        try:
            os.write(self._write, _RELEASED)
        finally:
            os.close(self._write)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - it exits on the word
            self._proc.kill()


def main() -> None:
    """The watcher's body: one JSON line, then wait for EOF."""
    order = json.loads(sys.stdin.buffer.readline())
    rest = sys.stdin.buffer.read()  # EOF: the writer released the run, or died
    if rest == _RELEASED:
        return
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    uri, run_id = order["uri"], order["run_id"]
    client = MlflowClient(tracking_uri=uri)
    run = call_store(uri, "reading the run", client.get_run, run_id)
    if run.info.status == "RUNNING" and run.data.tags.get(PID_TAG) == str(order["pid"]):
        call_store(
            uri,
            "closing the run of a dead process",
            client.set_terminated,
            run_id,
            status=RunStatus.to_string(RunStatus.KILLED),
        )


def close_abandoned(uri: str, client: Any, run_id: str) -> list[str]:
    """Mark KILLED this machine's other RUNNING runs of ``run_id``'s experiment whose process
    is gone (killed before its first checkpoint, so nothing will resume them); returns their
    ids. Runs of other machines, and of older versions (no pid tag), are left alone."""
    from mlflow.entities import RunStatus

    experiment_id = call_store(uri, "reading the run", client.get_run, run_id).info.experiment_id
    host = socket.gethostname()
    runs = call_store(
        uri,
        "finding abandoned runs",
        client.search_runs,
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
    )
    closed = []
    for run in runs:
        pid = run.data.tags.get(PID_TAG, "")
        if run.info.run_id == run_id or not pid.isdigit() or _alive(int(pid)):
            continue
        call_store(
            uri,
            "closing an abandoned run",
            client.set_terminated,
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
