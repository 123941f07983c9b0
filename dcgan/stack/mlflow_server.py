"""The one ``mlflow server`` launcher: its command line, start and wait for /health. The stack
runs it over PostgreSQL with artifacts in S3 and basic authentication; the tests run it over
SQLite with artifacts in a folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dcgan.stack import supervise
from dcgan.stack.supervise import Proc, http_answers

LOG_FILE = "mlflow.log"


def command(backend_uri: str, artifacts: str, port: int, app_name: str | None = None) -> list[str]:
    """``mlflow server`` with one worker on 127.0.0.1:``port``; artifacts proxied through it
    (clients need no storage credentials)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # the default starts several (~3 GB RSS)
        *(["--app-name", app_name] if app_name else []),
    ]


def start(
    folder: Path,
    backend_uri: str,
    artifacts: str,
    port: int,
    env: dict[str, str] | None = None,
    app_name: str | None = None,
) -> Proc:
    """Start the server in a process group of its own, its log in ``folder/mlflow.log``;
    return once /health answers."""
    env = dict(os.environ if env is None else env)
    # The job runner (GenAI judges, trace roll-ups; nothing this pipeline uses) starts ~7
    # consumer processes that poll all the time: ~1 GB RSS and a share of the CPU.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    url = f"http://127.0.0.1:{port}/health"
    return supervise.start(
        command(backend_uri, artifacts, port, app_name),
        folder / LOG_FILE,
        folder,
        lambda: http_answers(url, ok_only=True),
        "mlflow server",
        env,
    )
