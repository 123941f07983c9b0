"""PostgreSQL, MLflow's backend store: a cluster of the stack's own on a loopback port, with
password authentication and one database. PostgreSQL refuses to run as root: then it runs as
the ``postgres`` user. pg_ctl supervises it; its postmaster.pid says which process it is."""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psutil

from dcgan.errors import DcganError
from dcgan.stack.state import PG_DB, PG_USER, Stack

log = logging.getLogger(__name__)


def start(stack: Stack) -> None:
    """Make the cluster (initdb), start it and create MLflow's database."""
    user = _postgres_user()
    base = stack.folder / "pg"
    if user is not None and not _enterable(stack.folder, user):
        # As root under a folder the postgres user cannot enter (pytest's tmp folders): /tmp.
        base = Path(tempfile.mkdtemp(prefix="dcgan-stack-pg-"))
        log.warning(
            "PostgreSQL's data goes to %s: the postgres user cannot enter %s", base, stack.folder
        )
    base.mkdir(exist_ok=True)
    stack.postgres_dir = str(base)
    stack.save()
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    pwfile = base / "pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(stack.secrets["postgres"] + "\n")
    if user is not None:
        for path in (base, sockets, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
    try:  # the password comes from a file, never a command line
        _pg(
            "initdb",
            *("-D", str(data), "-U", PG_USER, "--auth=scram-sha-256", f"--pwfile={pwfile}"),
            *("-E", "UTF8"),
        )
    finally:
        pwfile.unlink()
    run(stack)
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=stack.ports["postgres"],
        user=PG_USER,
        password=stack.secrets["postgres"],
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        conn.execute(f"CREATE DATABASE {PG_DB}")


def run(stack: Stack) -> None:
    """``pg_ctl start`` on the stack's cluster, on its port, listening on loopback only."""
    base = Path(stack.postgres_dir)
    options = f"-p {stack.ports['postgres']} -k {base / 'sockets'} -h 127.0.0.1"
    data, logfile = str(base / "data"), str(base / "postgres.log")
    _pg("pg_ctl", "-D", data, "-w", "-t", "60", "-l", logfile, "-o", options, "start")


def process(stack: Stack) -> psutil.Process | None:
    """The running postmaster of the stack's cluster: the PID in postmaster.pid, if that
    process started when the file says (within 2 s) and is a postgres."""
    if not stack.postgres_dir:
        return None
    pidfile = Path(stack.postgres_dir) / "data" / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, started = int(lines[0]), float(lines[2])
        postmaster = psutil.Process(pid)
        same = abs(postmaster.create_time() - started) < 2 and "postgres" in postmaster.name()
        return postmaster if same and postmaster.status() != psutil.STATUS_ZOMBIE else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def stop(stack: Stack) -> None:
    """Stop the cluster (fast shutdown) and remove its folder, data included."""
    if not stack.postgres_dir:
        return
    data = Path(stack.postgres_dir) / "data"
    if data.is_dir() and process(stack) is not None:
        with contextlib.suppress(DcganError):
            _pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
    shutil.rmtree(stack.postgres_dir, ignore_errors=True)


def _postgres_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise DcganError(
            "running as root, and there is no `postgres` user to run PostgreSQL as; "
            "create one (useradd -r postgres) or run as an unprivileged user"
        ) from None


def _pg(tool: str, *args: str) -> None:
    path = shutil.which(tool) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))), None
    )
    if path is None:
        raise DcganError(
            f"PostgreSQL's `{tool}` is not installed; install PostgreSQL (apt-get install "
            "postgresql), or point MLflow at an existing database"
        )
    user = _postgres_user()

    def demote() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    proc = subprocess.run(
        [path, *args],
        capture_output=True,
        text=True,
        preexec_fn=demote if user is not None else None,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise DcganError(f"PostgreSQL's {tool} failed: {last}")


def _enterable(folder: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` (not root) may pass through every folder down to ``folder``."""
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for part in [folder, *folder.parents]:
        st = part.stat()
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True
