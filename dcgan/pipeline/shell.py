"""What every stage script (stages/*.py) does before its work: read the paths dvc.yaml's cmd
gives, remove what a run killed mid-write left beside its outputs, and check its params
block, all before TensorFlow or MLflow loads, so a bad value costs a second, not a minute."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from dcgan.config import load_config
from dcgan.files import remove_leftovers


def stage_args(
    doc: str | None,
    paths: Mapping[str, str],
    stage: str | None = None,
    optional: Mapping[str, str] | None = None,
    outputs: Sequence[str] | None = None,
) -> tuple[argparse.Namespace, Any]:
    """Parse the stage's command line and return it with the stage's checked config.

    ``paths``: the required ``--name`` options and their help; ``optional``: those a cmd may
    leave out. ``stage``: the params block to load from ``--params`` (None: the stage has
    none). ``outputs``: the options whose leftovers to remove (None: every path given).
    """
    parser = argparse.ArgumentParser(description=doc)
    if stage is not None:
        parser.add_argument("--params", required=True, help=f"params file (block {stage}:)")
    for name, text in paths.items():
        parser.add_argument(name, required=True, help=text)
    for name, text in (optional or {}).items():
        parser.add_argument(name, help=text)
    args = parser.parse_args()
    given = vars(args)
    if outputs is None:
        remove_leftovers(*given.values())  # of a run killed mid-write
    else:
        remove_leftovers(*(given[name.lstrip("-").replace("-", "_")] for name in outputs))
    return args, (load_config(stage, args.params) if stage is not None else None)
