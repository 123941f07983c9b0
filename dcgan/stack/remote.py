"""The stack's bucket as a clone's DVC remote."""

from __future__ import annotations

from pathlib import Path

from dcgan.errors import DcganError
from dcgan.stack.state import Stack

DVC_REMOTE = "team"


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
