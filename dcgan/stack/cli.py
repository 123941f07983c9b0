"""``dcgan stack up|env|remote|status|down``."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.stack.lifecycle import SERVICES, down, pid, states, up
from dcgan.stack.remote import DVC_REMOTE, configure_dvc_remote
from dcgan.stack.state import ADMIN, Stack

log = logging.getLogger(__name__)


def shell_exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def status_table(stack: Stack) -> tuple[str, list[str]]:
    """One row per service (state, address, PID) and the names of those not running."""
    now = states(stack)
    address = {
        "postgres": f"127.0.0.1:{stack.ports['postgres']}",
        "s3": stack.s3_endpoint,
        "mlflow": stack.tracking_uri,
    }
    rows = [("service", "state", "address", "pid")]
    for name in SERVICES:
        rows.append((name, now[name], address[name], str(pid(stack, name) or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]) for row in rows]
    lines.append(f"state: {stack.folder}")
    return "\n".join(lines) + "\n", [name for name in SERVICES if now[name] != "running"]


def command(action: str, folder: Path, repo: Path, s3: bool = False) -> None:
    """``dcgan stack ACTION``: see the package's docstring. ``s3``: `env` prints the S3 keys
    as well."""
    if s3 and action != "env":
        raise DcganError(f"--s3 goes with `stack env` only, not with `stack {action}`")
    if action == "up":
        start = time.monotonic()
        stack = up(folder)
        log.info(
            "stack up in %.1f s: MLflow %s (user %s), S3 %s, state in %s",
            time.monotonic() - start,
            stack.tracking_uri,
            ADMIN,
            stack.s3_endpoint,
            stack.folder,
        )
        # No secret here: up's output lands in scrollback and CI logs. `env` is the one
        # command that prints the password, when asked.
        log.info('eval "$(./run stack env)" gives this shell the MLflow address and login')
        return
    if action == "down":
        if not down(folder):
            log.info("no stack in %s", Path(folder).resolve())
        return
    stack = Stack.load(Path(folder).resolve())
    if stack is None:
        raise DcganError(f"no stack in {Path(folder).resolve()}; start one with `./run stack up`")
    if action == "env":
        sys.stdout.write(shell_exports({**stack.client_env(), **(stack.s3_env() if s3 else {})}))
    elif action == "remote":
        configure_dvc_remote(stack, repo)
        log.info(
            "DVC remote %r is %s at %s (.dvc/config.local)",
            DVC_REMOTE,
            stack.dvc_url,
            stack.s3_endpoint,
        )
    elif action == "status":
        table, stopped = status_table(stack)
        sys.stdout.write(table)
        sys.stdout.flush()
        if stopped:
            raise DcganError(
                f"{', '.join(stopped)} not running; `./run stack up` starts what is down, "
                "with its data"
            )
