"""The stack's state: its folder, ports, secrets and processes, in ``stack.json`` (mode 0600),
and what a client is given (the tracking URI and a user; never a server-side secret)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcgan.errors import DcganError
from dcgan.stack.supervise import Proc
from dcgan.tracking.store import ENV_URI

DEFAULT_FOLDER = Path(".stack")
STATE_FILE = "stack.json"
MLFLOW_BUCKET, DVC_BUCKET = "mlflow", "dvc"
ADMIN = "admin"  # MLflow's admin user (basic_auth.ini's admin_username)
PG_USER, PG_DB = "mlflow", "mlflow"


@dataclass
class Stack:
    """A running (or stopped) stack: where its state is, its ports, secrets and processes."""

    folder: Path
    ports: dict[str, int]
    secrets: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    postgres_dir: str = ""

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
            ENV_URI: self.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": self.secrets["mlflow_admin"],
        }

    def s3_env(self) -> dict[str, str]:
        """The S3 keys as boto3 and DVC read them, for a clone whose DVC remote is the bucket
        but holds no keys of its own (its .dvc/config.local is not cloned)."""
        access, secret = self.s3_keys()
        return {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}

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

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def save(self) -> None:
        data = {
            "folder": str(self.folder),
            "ports": self.ports,
            "secrets": self.secrets,
            "procs": {name: proc.to_json() for name, proc in self.procs.items()},
            "postgres_dir": self.postgres_dir,
        }
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
                # A state of an older dcgan has bare "pids" and no "procs": its processes
                # cannot be told from others, so it is refused like a damaged one.
                procs={k: Proc.from_json(v) for k, v in data["procs"].items()},
                postgres_dir=data.get("postgres_dir", ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DcganError(
                f"{path} is not a stack's state; stop what it started by hand, then remove {folder}"
            ) from None
