"""dvc.yaml read as the one place where the pipeline's files are named.

The stages receive every path on their command line (dvc.yaml's ``cmd``); what else needs a
path of the pipeline (``dcgan sample`` and ``dcgan bench`` defaults, the tests) reads it here
from the same file instead of spelling it again.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from dcgan.errors import DcganError

DVC_FILE = "dvc.yaml"


def _pipeline(root: str | os.PathLike[str]) -> dict:
    import yaml

    path = Path(root) / DVC_FILE
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DcganError(f"{path} not found; run this from the repository root") from None


def stage_args(stage: str, root: str | os.PathLike[str] = ".") -> dict[str, str]:
    """The ``--flag value`` pairs of a stage's ``cmd`` in dvc.yaml, keyed by the flag without
    dashes (``--class-shares`` -> ``class_shares``)."""
    stages = _pipeline(root).get("stages", {})
    if stage not in stages:
        raise DcganError(f"{Path(root) / DVC_FILE} has no stage {stage!r}")
    words = shlex.split(stages[stage]["cmd"])
    flags = [i for i, w in enumerate(words) if w.startswith("--")]
    return {words[i][2:].replace("-", "_"): words[i + 1] for i in flags}


def artifact_path(name: str, root: str | os.PathLike[str] = ".") -> str:
    """The path of a dvc.yaml artifact (``generator``: the ONNX file)."""
    artifacts = _pipeline(root).get("artifacts", {})
    if name not in artifacts:
        raise DcganError(f"{Path(root) / DVC_FILE} declares no artifact {name!r}")
    return artifacts[name]["path"]
