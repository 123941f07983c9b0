"""Where MLflow's record lives: the tracking URI, and a check that it can be used.

The default store is ``sqlite:///<repo>/mlflow.db`` at the *main* repository root, also
from inside DVC's temporary experiment copies (``.dvc/tmp/exps/...``), so workspace runs
and queued experiments land in one store. ``MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.layout import DVC_FILE

ENV_URI = "MLFLOW_TRACKING_URI"


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The main repository root: above ``.dvc/tmp/exps/<copy>`` if we run inside one."""
    here = Path(start or os.getcwd()).resolve()
    parts = here.parts
    # A queued `dvc exp run` executes in <root>/.dvc/tmp/exps/<tmp>/...; its store would be lost.
    for i in range(len(parts) - 3):
        if parts[i] == ".dvc" and parts[i + 1] == "tmp" and parts[i + 2] == "exps":
            return Path(*parts[:i])
    for candidate in (here, *here.parents):
        if (candidate / DVC_FILE).is_file() or (candidate / ".dvc").is_dir():
            return candidate
    return here


# Parallel experiments (`dvc queue start -j 2`) write one SQLite file at once: wait for the
# lock for up to a minute instead of failing with "database is locked" after SQLite's 5 s.
SQLITE_TIMEOUT_S = 60


def tracking_uri(root: str | os.PathLike[str] | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` or the SQLite store at the repository root, as an absolute URI."""
    env = os.environ.get(ENV_URI, "").strip()
    if env:
        return env
    db = (Path(root) if root else repo_root()) / "mlflow.db"
    return f"sqlite:///{db}?timeout={SQLITE_TIMEOUT_S}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (query string removed), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def _default_artifact_root(uri: str) -> str | None:
    """Keep artifacts next to a local SQLite store (MLflow would use ./mlruns of the cwd)."""
    db = sqlite_path(uri)
    return (db.parent / "mlruns").as_uri() if db else None


def store_lock(uri: str):
    """A lock file next to a SQLite store, serialising table creation and experiment
    creation across this machine's processes; a no-op for servers and databases, which other
    machines share and no file lock reaches (so creating an experiment settles a lost race
    itself: see tracker._experiment_id)."""
    from contextlib import nullcontext

    from filelock import FileLock

    db = sqlite_path(uri)
    return FileLock(f"{db}.lock", timeout=SQLITE_TIMEOUT_S) if db else nullcontext()


def _enable_wal(uri: str) -> None:
    """Write-ahead logging: readers (mlflow ui) never block a training run's writes."""
    import sqlite3

    db = sqlite_path(uri)
    if db is not None and db.exists():
        with sqlite3.connect(db, timeout=SQLITE_TIMEOUT_S) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to a local SQLite store, else the
    server's or database's default (None)."""
    root = _default_artifact_root(uri)
    return f"{root}/{experiment}" if root else None


SECRET_KEYS = ("password", "passwd", "secret", "token", "key")  # query keys that hide values


def safe_uri(uri: str) -> str:
    """``uri`` with its password (and any password-like query value) replaced by ``***``: the
    form every message, log line and tag shows."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = [k for k, _ in pairs if any(s in k.lower() for s in SECRET_KEYS)]
    if parts.password is None and not secret:
        return uri  # unchanged: urlunsplit would also fold sqlite:////abs/path
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = urlencode([(k, "***" if k in secret else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# Default ports of the database servers MLflow's SQLAlchemy store speaks to.
DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def check_tracking_store(uri: str | None = None, timeout: float = 5.0) -> str:
    """Fail fast, before any training, if the tracking store cannot be reached or written.

    Returns the URI. MLflow's own client retries an unreachable server or database for
    minutes, so a server is probed once on its /health endpoint and a database server with
    one TCP connection, each with a short timeout. Messages never show a password.
    """
    uri = uri or tracking_uri()
    shown = safe_uri(uri)
    fix = f"start it, or unset {ENV_URI} to use ./mlflow.db"
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("http", "https"):
        _probe_server(uri, shown, fix, timeout)
        return uri
    if scheme in DB_PORTS:
        _probe_database(uri, scheme, shown, fix, timeout)
    db = sqlite_path(uri)
    if db is not None:
        folder = db.parent
        if (
            not folder.is_dir()
            or not os.access(folder, os.W_OK)
            or (db.exists() and not os.access(db, os.W_OK))
        ):
            raise DcganError(
                f"MLflow tracking store {shown} cannot be written (check that "
                f"{folder} exists and is writable), or set {ENV_URI}"
            )
        fix = f"move {db} away if it is not an MLflow store, or set {ENV_URI}"
    try:
        from mlflow.tracking import MlflowClient

        with store_lock(uri):  # the first use creates the tables: once, not once per process
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
            _enable_wal(uri)
    except Exception as exc:  # noqa: BLE001 - MLflow wraps store errors in many types
        text = str(exc).replace(uri, shown).strip()
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        raise DcganError(f"MLflow tracking store {shown} is not usable ({first}); {fix}") from None
    return uri


def _probe_server(uri: str, shown: str, fix: str, timeout: float) -> None:
    """GET /health once, then one authenticated API call (a server with authentication
    answers /health to anyone; MLflow's client would fail on the first log call instead).
    urllib takes no user:password in the URL (it would look the host up as
    ``user:password@host``), so the credentials go into a header instead, from the URL or
    from MLflow's MLFLOW_TRACKING_USERNAME/PASSWORD (or MLFLOW_TRACKING_TOKEN)."""
    # Over 60 lines: each way the probe can fail gets its own one-line message and fix.
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    base = parts.path.rstrip("/")

    def request(path: str, data: bytes | None = None) -> urllib.request.Request:
        url = urlunsplit((parts.scheme, host, base + path, "", ""))
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password or "") if user is not None else None
        if user is None and os.environ.get("MLFLOW_TRACKING_USERNAME"):
            user = os.environ["MLFLOW_TRACKING_USERNAME"]
            password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
            req.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
        return req

    try:
        with urllib.request.urlopen(request("/health"), timeout=timeout) as reply:
            if reply.status != 200:
                raise urllib.error.URLError(f"HTTP {reply.status}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DcganError(
            f"MLflow tracking server {shown} does not answer ({reason}); {fix}"
        ) from None
    search = request("/api/2.0/mlflow/experiments/search", b'{"max_results": 1}')
    try:
        # It answered /health: a slow reply here is a cold server checking a password
        # (seconds), not a dead one.
        urllib.request.urlopen(search, timeout=max(timeout, 60)).close()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise DcganError(
                f"MLflow tracking server {shown} refused the credentials (HTTP 401); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of that server"
            ) from None
        if exc.code == 403:
            raise DcganError(
                f"MLflow tracking server {shown} denied this user access (HTTP 403); ask its "
                "admin for permission, or use another user"
            ) from None
        # Anything else is for MLflow's client to report (e.g. an older server's API).
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DcganError(
            f"MLflow tracking server {shown} does not answer ({reason}); {fix}"
        ) from None


def _probe_database(uri: str, scheme: str, shown: str, fix: str, timeout: float) -> None:
    """One TCP connection to the database server, before MLflow's pool retries for minutes."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if not parts.hostname:  # a local socket: MLflow reports that one itself
        return
    port = parts.port or DB_PORTS[scheme]
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DcganError(
            f"MLflow database server {shown} does not answer on port {port} ({reason}); {fix}"
        ) from None


@contextmanager
def environ(values: Mapping[str, str | None], restore: Iterable[str] = ()) -> Iterator[None]:
    """Environment variables set for the block (None unsets one); they, and the names in
    ``restore`` (which the block may set itself), are put back exactly as they were: unset
    stays unset."""
    saved = {name: os.environ.get(name) for name in {*values, *restore}}
    try:
        _put(values)
        yield
    finally:
        _put(saved)


def _put(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def mlflow_uris(uri: str, experiment_id: str | None = None) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to ``uri`` for the block, then put
    back exactly as they were: for the fluent calls that have no client form
    (``mlflow.onnx.log_model`` creates its logged model in the current experiment,
    ``mlflow.register_model`` resolves logged models). ``experiment_id`` makes that
    experiment current for the block (as ``MLFLOW_EXPERIMENT_ID``), without starting a run.

    ``mlflow.set_*_uri`` also export ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``, and
    ``get_registry_uri()`` returns a resolved default, so setting back what the getters
    return would pin the registry to an old store. The module values and the environment
    variables are saved and restored as they were (unset stays unset).
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = (
        ENV_URI,
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
    )
    # The name would win over the id.
    current = {"MLFLOW_EXPERIMENT_ID": experiment_id, "MLFLOW_EXPERIMENT_NAME": None}
    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    with environ(current if experiment_id is not None else {}, restore=names):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved
