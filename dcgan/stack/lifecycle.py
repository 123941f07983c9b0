"""Bring the stack up (or what of it is down, with its data) and down, and report what runs."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.stack import mlflow_server, postgres, seaweed
from dcgan.stack.state import ADMIN, DEFAULT_FOLDER, DVC_BUCKET, MLFLOW_BUCKET, Stack
from dcgan.stack.supervise import START_TIMEOUT_S, describe, ours, stop

log = logging.getLogger(__name__)

SERVICES = ("postgres", "s3", "mlflow")
GRPC_OFFSET = 10000  # weed's gRPC ports are its HTTP ports + 10000: both must be free


def up(folder: Path = DEFAULT_FOLDER) -> Stack:
    """Start the stack in ``folder``, or return it if it already runs there."""
    folder = Path(folder).resolve()
    existing = Stack.load(folder)
    if existing is not None:
        _restart(existing)
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    # Others may pass through (PostgreSQL runs as the postgres user when we are root) but not
    # list it; what is in it is private: 0600 files of ours, and the servers run with umask 077.
    os.chmod(folder, 0o711)
    stack = Stack(
        folder=folder,
        ports=_free_ports(["postgres", "mlflow", "s3"], ["s3_master", "s3_volume", "s3_filer"]),
        secrets={
            "postgres": secrets.token_urlsafe(24),
            "mlflow_admin": secrets.token_urlsafe(24),
            "flask": secrets.token_hex(32),
            "s3_access_key": "dcgan" + secrets.token_hex(8),
            "s3_secret_key": secrets.token_urlsafe(30),
        },
    )
    stack.save()
    try:
        postgres.start(stack)
        _start(stack, "s3")
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            stack.s3_client().create_bucket(Bucket=bucket)
        _start(stack, "mlflow")
    except BaseException:
        down(folder)
        raise
    return stack


def states(stack: Stack) -> dict[str, str]:
    """Each service's state: running, stopped, or stopped with its PID now another's."""
    pg = "running" if postgres.process(stack) is not None else "stopped"
    return {"postgres": pg, **{name: describe(stack.procs.get(name)) for name in ("s3", "mlflow")}}


def pid(stack: Stack, name: str) -> int | None:
    if name == "postgres":
        postmaster = postgres.process(stack)
        return postmaster.pid if postmaster is not None else None
    proc = stack.procs.get(name)
    return proc.pid if ours(proc) is not None else None


def down(folder: Path = DEFAULT_FOLDER) -> bool:
    """Stop everything the stack in ``folder`` started and remove the folder (its data
    included). False if there was no stack there."""
    folder = Path(folder).resolve()
    stack = Stack.load(folder)
    if stack is None:
        return False
    for name in ("mlflow", "s3"):
        stop(stack.procs.get(name))  # only if the PID is still the process we started
    postgres.stop(stack)
    shutil.rmtree(folder, ignore_errors=True)
    return True


def stop_service(stack: Stack, name: str) -> None:
    """Stop one service ("s3" or "mlflow"), its data kept: `up` starts it again."""
    stop(stack.procs.pop(name, None))
    stack.save()


@contextlib.contextmanager
def running(folder: Path) -> Iterator[Stack]:
    """A stack for the block: started, then stopped and removed."""
    stack = up(folder)
    try:
        yield stack
    finally:
        down(folder)


def _start(stack: Stack, name: str) -> None:
    if name == "s3":
        stack.procs["s3"] = seaweed.start(stack)
        stack.save()
    else:
        access, secret = stack.s3_keys()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
        env.update(
            AWS_ACCESS_KEY_ID=access,
            AWS_SECRET_ACCESS_KEY=secret,
            MLFLOW_S3_ENDPOINT_URL=stack.s3_endpoint,
            PGPASSWORD=stack.secrets["postgres"],
            MLFLOW_FLASK_SERVER_SECRET_KEY=stack.secrets["flask"],
            MLFLOW_AUTH_ADMIN_PASSWORD=stack.secrets["mlflow_admin"],
            MLFLOW_AUTH_CONFIG_PATH=str(_auth_config(stack)),
        )
        stack.procs["mlflow"] = mlflow_server.start(
            stack.folder,
            stack.backend_uri,
            stack.artifacts_url,
            stack.ports["mlflow"],
            env=env,
            app_name="basic-auth",
        )
        stack.save()  # recorded before the warm-up, so a failing `up` stops it too
        _warm_up(stack)


def _warm_up(stack: Stack) -> None:
    """One request as the admin: checks the login, and leaves the server warm (its first
    authenticated request takes seconds)."""
    token = base64.b64encode(f"{ADMIN}:{stack.secrets['mlflow_admin']}".encode()).decode()
    request = urllib.request.Request(
        f"{stack.tracking_uri}/api/2.0/mlflow/experiments/search",
        data=b'{"max_results": 1}',
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=START_TIMEOUT_S).close()
    except OSError as exc:
        raise DcganError(
            f"mlflow server refused its admin ({exc}); see {stack.folder / mlflow_server.LOG_FILE}"
        ) from None


def _auth_config(stack: Stack) -> Path:
    """MLflow's basic_auth.ini, with its user store in the folder and a credentials cache:
    without one, every request hashes the password again (PBKDF2, ~2 s of server CPU per
    request measured here), and training logs hundreds of requests."""
    path = stack.folder / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{stack.folder / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 300\n"
    )
    return path


def _restart(stack: Stack) -> None:
    """Start again, on the same ports with the same secrets and data, the parts of an
    existing stack that are down (after a reboot, or a part that was stopped or crashed)."""
    down_now = [name for name, state in states(stack).items() if state != "running"]
    if not down_now:
        return
    log.warning(
        "the stack in %s has %s down; starting it again with its data",
        stack.folder,
        ", ".join(down_now),
    )
    try:
        if "postgres" in down_now:
            if not (Path(stack.postgres_dir) / "data").is_dir():
                raise DcganError(f"its PostgreSQL data ({stack.postgres_dir}) is gone")
            postgres.run(stack)
        for name in ("s3", "mlflow"):
            if name in down_now:
                _start(stack, name)
    except DcganError as exc:
        raise DcganError(
            f"cannot restart the stack in {stack.folder}: {exc}; `./run stack down` stops "
            "what runs and removes it (its data too), then `./run stack up` starts a new one"
        ) from None


def _free_ports(plain: list[str], with_grpc: list[str]) -> dict[str, int]:
    """Free loopback ports; for ``with_grpc``, the port + 10000 is free as well."""
    ports: dict[str, int] = {}
    held: list[socket.socket] = []  # held open until all are chosen: no duplicates
    try:
        for name in plain + with_grpc:
            for _ in range(200):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
                if name not in with_grpc:
                    break
                if port + GRPC_OFFSET < 65536 and _bindable(port + GRPC_OFFSET):
                    break
                s.close()
            else:  # pragma: no cover - a machine with almost no free ports
                raise DcganError("found no free pair of loopback ports for SeaweedFS")
            held.append(s)
            ports[name] = port
    finally:
        for s in held:
            s.close()
    return ports


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
