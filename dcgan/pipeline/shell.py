"""What every stage script (stages/*.py) does before its work: make the command line from the
stage's paths (dcgan.pipeline.paths), remove what a run killed mid-write left beside its
outputs, and check its params block, all before TensorFlow or MLflow loads, so a bad value
costs a second, not a minute."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from dcgan.config import STAGES, NoParams, load_config
from dcgan.files import remove_leftovers
from dcgan.pipeline.paths import StagePaths

P = TypeVar("P", bound=StagePaths)


def option(name: str) -> str:
    """The command-line option of a paths field: ``class_shares`` -> ``--class-shares``."""
    return "--" + name.replace("_", "-")


def stage_args(doc: str | None, stage: str, paths: type[P]) -> tuple[Any, P, Path | None]:
    """Parse the stage's command line: its checked config (:class:`~dcgan.config.NoParams`
    for a stage without a params block), its paths, and the params file (None without one).

    A stage with a block takes ``--params``; when the paths hold ``params`` (train reads the
    file again while it runs), that field is the option."""
    parser = argparse.ArgumentParser(description=doc)
    fields = dataclasses.fields(paths)
    has_block = stage in STAGES
    if has_block and "params" not in {f.name for f in fields}:
        parser.add_argument("--params", required=True, help=f"params file (block {stage}:)")
    for f in fields:
        parser.add_argument(
            option(f.name), dest=f.name, required=f.metadata["required"], help=f.metadata["help"]
        )
    given = vars(parser.parse_args())
    params = given["params"] if has_block else None
    stage_paths = paths(**{f.name: given[f.name] for f in fields})
    remove_leftovers(*stage_paths.written())  # of a run killed mid-write
    cfg = load_config(stage, params) if has_block else NoParams()
    return cfg, stage_paths, Path(params) if params is not None else None
