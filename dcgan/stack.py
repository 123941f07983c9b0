"""The team's stack on one machine, for a five-minute try and for the tests: PostgreSQL
(MLflow's backend store), SeaweedFS (S3: MLflow's artifacts and the DVC remote) and an
``mlflow server`` with basic authentication whose artifacts are proxied to S3, so clients need
only the tracking URI and a user. Every port is free and on 127.0.0.1; secrets are generated
and kept in the state folder (``.stack/stack.json``, mode 0600), never on a command line or in
a log.

``dcgan stack up`` starts it (or what of it is down, with its data), ``env`` prints what a
client exports, ``remote`` points this clone's DVC remote at its bucket (in
``.dvc/config.local``, which git ignores), ``status`` says what runs, ``down`` stops it and
removes its folder."""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcgan.errors import DcganError

log = logging.getLogger(__name__)

DEFAULT_FOLDER = Path(".stack")
STATE_FILE = "stack.json"
MLFLOW_BUCKET, DVC_BUCKET = "mlflow", "dvc"
DVC_REMOTE = "team"
ADMIN = "admin"  # MLflow's admin user (basic_auth.ini's admin_username)
PG_USER, PG_DB = "mlflow", "mlflow"
START_TIMEOUT_S = 120.0
# weed's gRPC ports are its HTTP ports + 10000: both must be free.
GRPC_OFFSET = 10000


@dataclass
class Stack:
    """A running (or stopped) stack: where its state is, its ports, secrets and processes."""

    folder: Path
    ports: dict[str, int]
    secrets: dict[str, str]
    pids: dict[str, int] = field(default_factory=dict)
    postgres_dir: str = ""

    # -- what clients use -------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def dvc_url(self) -> str:
        return f"s3://{DVC_BUCKET}/store"

    @property
    def artifacts_url(self) -> str:
        return f"s3://{MLFLOW_BUCKET}/artifacts"

    @property
    def backend_uri(self) -> str:
        """PostgreSQL, without the password (the server gets it in PGPASSWORD)."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.ports['postgres']}/{PG_DB}"

    def client_env(self) -> dict[str, str]:
        """All an MLflow client needs: no S3 key (the server proxies artifacts)."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": self.secrets["mlflow_admin"],
        }

    def s3_keys(self) -> tuple[str, str]:
        return self.secrets["s3_access_key"], self.secrets["s3_secret_key"]

    def s3_client(self) -> Any:
        import boto3
        from botocore.config import Config

        access, secret = self.s3_keys()
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def save(self) -> None:
        data = asdict(self)
        data["folder"] = str(self.folder)
        tmp = self.folder / f".{STATE_FILE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.state_path)

    @classmethod
    def load(cls, folder: Path) -> Stack | None:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(
                folder=Path(folder),
                ports={k: int(v) for k, v in data["ports"].items()},
                secrets=dict(data["secrets"]),
                pids={k: int(v) for k, v in data.get("pids", {}).items()},
                postgres_dir=data.get("postgres_dir", ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DcganError(
                f"{path} is not a stack's state; stop what it started by hand, then remove {folder}"
            ) from None

    # -- the parts --------------------------------------------------------------------------

    def running(self) -> dict[str, bool]:
        return {
            "postgres": _postgres_alive(self),
            "s3": _alive(self.pids.get("s3")),
            "mlflow": _alive(self.pids.get("mlflow")),
        }

    def start_s3(self) -> None:
        """SeaweedFS's S3 gateway with one identity (our keys), on loopback only."""
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise DcganError(
                "SeaweedFS's `weed` is not installed (it comes with the `team` extra: "
                "./run stack up installs it; there is no macOS wheel, so on a Mac point "
                "the stack at another S3 server)"
            )
        data = self.folder / "s3"
        data.mkdir(exist_ok=True)
        access, secret = self.s3_keys()
        identities = {
            "identities": [
                {
                    "name": "team",
                    "credentials": [{"accessKey": access, "secretKey": secret}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        config = self.folder / "s3-identities.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(identities, f)
        p = self.ports
        command = [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",  # the default is a non-loopback address
            "-ip.bind=127.0.0.1",  # the default is 0.0.0.0
            f"-master.port={p['s3_master']}",
            f"-volume.port={p['s3_volume']}",
            f"-filer.port={p['s3_filer']}",  # serves objects without authentication: loopback
            f"-s3.port={p['s3']}",
            f"-s3.config={config}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ]
        self.pids["s3"] = _spawn(command, self.folder / "s3.log", cwd=self.folder)
        self.save()
        _wait(
            lambda: _http_answers(self.s3_endpoint),
            self.pids["s3"],
            "SeaweedFS S3",
            self.folder / "s3.log",
        )

    def stop_s3(self) -> None:
        _stop_group(self.pids.pop("s3", None))
        self.save()

    def start_mlflow(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
        access, secret = self.s3_keys()
        env.update(
            AWS_ACCESS_KEY_ID=access,
            AWS_SECRET_ACCESS_KEY=secret,
            MLFLOW_S3_ENDPOINT_URL=self.s3_endpoint,
            PGPASSWORD=self.secrets["postgres"],
            MLFLOW_FLASK_SERVER_SECRET_KEY=self.secrets["flask"],
            MLFLOW_AUTH_ADMIN_PASSWORD=self.secrets["mlflow_admin"],
            MLFLOW_AUTH_CONFIG_PATH=str(self._auth_config()),
            # The job runner (GenAI judges, trace roll-ups; nothing this pipeline uses) starts
            # ~7 consumer processes that poll all the time: ~1 GB RSS and a share of the CPU.
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            self.artifacts_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports["mlflow"]),
            "--workers",
            "1",  # the default starts several (~3 GB RSS)
            "--app-name",
            "basic-auth",
        ]
        self.pids["mlflow"] = _spawn(command, self.folder / "mlflow.log", cwd=self.folder, env=env)
        self.save()
        _wait(
            lambda: _http_answers(f"{self.tracking_uri}/health", ok_only=True),
            self.pids["mlflow"],
            "mlflow server",
            self.folder / "mlflow.log",
        )
        # One request as the admin: checks the login, and leaves the server warm (its first
        # authenticated request takes seconds).
        import base64

        token = base64.b64encode(f"{ADMIN}:{self.secrets['mlflow_admin']}".encode()).decode()
        request = urllib.request.Request(
            f"{self.tracking_uri}/api/2.0/mlflow/experiments/search",
            data=b'{"max_results": 1}',
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=START_TIMEOUT_S).close()
        except OSError as exc:
            raise DcganError(
                f"mlflow server refused its admin ({exc}); see {self.folder / 'mlflow.log'}"
            ) from None

    def _auth_config(self) -> Path:
        """MLflow's basic_auth.ini, with its user store in the folder and a credentials
        cache: without one, every request hashes the password again (PBKDF2, ~2 s of server
        CPU per request measured here), and training logs hundreds of requests."""
        path = self.folder / "basic_auth.ini"
        path.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{self.folder / 'basic_auth.db'}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 300\n"
        )
        return path

    def stop_mlflow(self) -> None:
        _stop_group(self.pids.pop("mlflow", None))
        self.save()


# -- up, down --------------------------------------------------------------------------------


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
        _start_postgres(stack)
        stack.start_s3()
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            stack.s3_client().create_bucket(Bucket=bucket)
        stack.start_mlflow()
    except BaseException:
        down(folder)
        raise
    return stack


def _restart(stack: Stack) -> None:
    """Start again, on the same ports with the same secrets and data, the parts of an
    existing stack that are down (after a reboot, or a part that was stopped or crashed)."""
    running = stack.running()
    if all(running.values()):
        return
    log.warning(
        "the stack in %s has %s down; starting it again with its data",
        stack.folder,
        ", ".join(name for name, up in running.items() if not up),
    )
    try:
        if not running["postgres"]:
            if not (Path(stack.postgres_dir) / "data").is_dir():
                raise DcganError(f"its PostgreSQL data ({stack.postgres_dir}) is gone")
            _run_postgres(stack)
        if not running["s3"]:
            stack.start_s3()
        if not running["mlflow"]:
            stack.start_mlflow()
    except DcganError as exc:
        raise DcganError(
            f"cannot restart the stack in {stack.folder}: {exc}; `./run stack down` stops "
            "what runs and removes it (its data too), then `./run stack up` starts a new one"
        ) from None


def down(folder: Path = DEFAULT_FOLDER) -> bool:
    """Stop everything the stack in ``folder`` started and remove the folder (its data
    included). False if there was no stack there."""
    folder = Path(folder).resolve()
    stack = Stack.load(folder)
    if stack is None:
        return False
    _stop_group(stack.pids.get("mlflow"))
    _stop_group(stack.pids.get("s3"))
    if stack.postgres_dir:
        data = Path(stack.postgres_dir) / "data"
        if data.is_dir():
            _pg(
                stack,
                "pg_ctl",
                "-D",
                str(data),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
                check=False,
            )
        shutil.rmtree(stack.postgres_dir, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return True


@contextlib.contextmanager
def running(folder: Path) -> Iterator[Stack]:
    """A stack for the block: started, then stopped and removed."""
    stack = up(folder)
    try:
        yield stack
    finally:
        down(folder)


def configure_dvc_remote(stack: Stack, repo: Path, name: str = DVC_REMOTE) -> None:
    """Make the stack's bucket this clone's default DVC remote, in .dvc/config.local (git
    ignores it: the endpoint is a loopback port and the keys are secrets). Written through
    DVC's config API, so the secret key is never on a command line."""
    from dvc.config import Config, ConfigError

    access, secret = stack.s3_keys()
    if not (Path(repo) / ".dvc").is_dir():
        raise DcganError(f"{Path(repo).resolve()} is not a DVC project; run this in a clone")
    try:
        config = Config(dvc_dir=Path(repo) / ".dvc")
        with config.edit("local") as conf:
            conf["remote"][name] = {
                "url": stack.dvc_url,
                "endpointurl": stack.s3_endpoint,
                "access_key_id": access,
                "secret_access_key": secret,
            }
            conf["core"]["remote"] = name
    except ConfigError as exc:
        raise DcganError(
            f"cannot set the DVC remote in {repo} ({exc}); run it in a clone"
        ) from None


def shell_exports(env: dict[str, str]) -> str:
    import shlex

    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


# -- helpers ---------------------------------------------------------------------------------


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


def _spawn(command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start ``command`` in a session of its own (it outlives ``dcgan stack up``; ``down``
    stops its whole group), output appended to ``log_path``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            umask=0o077,  # its files (user store, objects, logs) are private
        )
    return proc.pid


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(") ", 1)[1][0] != "Z"


def _stop_group(pid: int | None, timeout: float = 30.0) -> None:
    """SIGTERM the process group ``pid`` leads, SIGKILL after ``timeout`` seconds."""
    if not pid:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not _alive(pid):
                return
            time.sleep(0.2)


def _http_answers(url: str, ok_only: bool = False) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return not ok_only  # S3 answers 403 to an anonymous request: it is up
    except OSError:
        return False


def _wait(ready: Callable[[], bool], pid: int | None, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if not _alive(pid) or time.monotonic() > deadline:
            raise DcganError(f"{what} did not start within {START_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.3)


def _postgres_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: then it runs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise DcganError(
            "running as root, and there is no `postgres` user to run PostgreSQL as; "
            "create one (useradd -r postgres) or run as an unprivileged user"
        ) from None


def _pg(stack: Stack, tool: str, *args: str, check: bool = True) -> None:
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
    if check and proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise DcganError(f"PostgreSQL's {tool} failed: {last}")


def _start_postgres(stack: Stack) -> None:
    """A cluster of its own on a loopback port, password authentication, one database."""
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
    try:
        _pg(
            stack,
            "initdb",
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
        )
    finally:
        pwfile.unlink()
    _run_postgres(stack)
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


def _run_postgres(stack: Stack) -> None:
    """``pg_ctl start`` on the stack's cluster, on its port, listening on loopback only."""
    base = Path(stack.postgres_dir)
    options = f"-p {stack.ports['postgres']} -k {base / 'sockets'} -h 127.0.0.1"
    _pg(
        stack,
        "pg_ctl",
        "-D",
        str(base / "data"),
        "-w",
        "-t",
        "60",
        "-l",
        str(base / "postgres.log"),
        "-o",
        options,
        "start",
    )


def _postgres_alive(stack: Stack) -> bool:
    if not stack.postgres_dir:
        return False
    pidfile = Path(stack.postgres_dir) / "data" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _alive(pid)


# -- the command -----------------------------------------------------------------------------


def command(action: str, folder: Path, repo: Path) -> None:
    """``dcgan stack ACTION``: see the module's docstring."""
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
        sys.stdout.write(shell_exports(stack.client_env()))
        return
    if action == "down":
        if not down(folder):
            log.info("no stack in %s", Path(folder).resolve())
        return
    stack = Stack.load(Path(folder).resolve())
    if stack is None:
        raise DcganError(f"no stack in {Path(folder).resolve()}; start one with `./run stack up`")
    if action == "env":
        sys.stdout.write(shell_exports(stack.client_env()))
    elif action == "remote":
        configure_dvc_remote(stack, repo)
        log.info(
            "DVC remote %r is %s at %s (.dvc/config.local)",
            DVC_REMOTE,
            stack.dvc_url,
            stack.s3_endpoint,
        )
    elif action == "status":
        for name, alive in stack.running().items():
            print(f"{name}: {'running' if alive else 'stopped'}")
        print(f"MLflow: {stack.tracking_uri}\nS3: {stack.s3_endpoint}\nstate: {stack.folder}")
