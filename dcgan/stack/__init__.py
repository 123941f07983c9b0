"""The team's stack on one machine, for a five-minute try and for the tests: PostgreSQL
(MLflow's backend store), SeaweedFS (S3: MLflow's artifacts and the DVC remote) and an
``mlflow server`` with basic authentication whose artifacts are proxied to S3, so clients need
only the tracking URI and a user. Every port is free and on 127.0.0.1; secrets are generated
and kept in the state folder (``.stack/stack.json``, mode 0600), never on a command line or in
a log.

``dcgan stack up`` starts it (or what of it is down, with its data), ``env`` prints what a
client exports (``--s3``: the S3 keys too, for clones that have only the committed DVC remote,
as a sweep's trials), ``remote`` points this clone's DVC remote at its bucket (in
``.dvc/config.local``, which git ignores), ``status`` says what runs, ``down`` stops it and
removes its folder.

One module a job: ``state`` (the state file and secrets), ``supervise`` (start, wait, check
and stop processes, on psutil), ``postgres``, ``seaweed`` and ``mlflow_server`` (a launcher
each; the tests start their MLflow servers with the same one), ``remote`` (the DVC remote),
``lifecycle`` (up and down) and ``cli``."""

from dcgan.stack.cli import command, shell_exports
from dcgan.stack.lifecycle import down, running, states, stop_service, up
from dcgan.stack.remote import DVC_REMOTE, configure_dvc_remote
from dcgan.stack.state import DEFAULT_FOLDER, Stack

__all__ = [
    "DEFAULT_FOLDER",
    "DVC_REMOTE",
    "Stack",
    "command",
    "configure_dvc_remote",
    "down",
    "running",
    "shell_exports",
    "states",
    "stop_service",
    "up",
]
