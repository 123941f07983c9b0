"""Each stage's files, named once: a frozen dataclass a stage, whose fields are what the stage
reads and writes. ``stage.run(cfg, paths)`` takes one; the stage's script (stages/*.py) makes
its command line from the fields (``class_shares`` -> ``--class-shares``) and dvc.yaml's ``cmd``
gives the values, so dvc.yaml stays the one place that names the files.

Light on purpose (the standard library only): the scripts import it before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READ, WRITTEN = "read", "written"


def read(help: str, *, needed: bool = True, on_command_line: bool | None = None) -> Any:
    """A file or folder the stage reads. ``needed=False``: it may be None (the stage does
    without). ``on_command_line``: whether its script requires it (default: ``needed``)."""
    return _field(READ, help, needed, on_command_line)


def written(help: str, *, needed: bool = True) -> Any:
    """A file or folder the stage writes; a killed run's leftovers beside it are removed at
    start (dcgan.files.remove_leftovers)."""
    return _field(WRITTEN, help, needed, None)


def _field(kind: str, help: str, needed: bool, on_command_line: bool | None) -> Any:
    required = needed if on_command_line is None else on_command_line
    meta = {"kind": kind, "help": help, "required": required}
    if needed:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=None, metadata=meta)


@dataclass(frozen=True)
class StagePaths:
    """Each field a :class:`~pathlib.Path` (or None), whatever the caller passed (a script
    passes command-line strings)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, Path(value))

    def written(self) -> list[Path]:
        """The outputs given, in field order."""
        return [
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata["kind"] == WRITTEN and getattr(self, f.name) is not None
        ]


@dataclass(frozen=True)
class PreparePaths(StagePaths):
    out: Path = written("folder of the normalised .npy splits and meta.json")


@dataclass(frozen=True)
class TrainPaths(StagePaths):
    data: Path = read("prepared data folder")
    generator: Path = written("generator .keras to write")
    discriminator: Path = written("discriminator .keras to write")
    training: Path = written("JSON record of what made the models")
    samples: Path = written("folder for the fixed-noise grid of each sample_interval")
    losses: Path = written("loss plot PNG")
    history: Path = written("history CSV, a row each sample_interval (DVC plots)")
    metrics: Path = written("final losses and lowest FCD JSON (DVC metrics)")
    quality: Path = written("quality scores at each eval_interval JSON (DVC plots)")
    # Read again at every interval: a train block changed mid-run stops the run (params_guard).
    params: Path | None = read(
        "params file the stage's block was read from", needed=False, on_command_line=True
    )
    classifier: Path | None = read(
        "the classifier stage's .keras; needed unless train.eval_interval is 0",
        needed=False,
        on_command_line=True,
    )
    checkpoints: Path | None = written(
        "checkpoint folder; a crashed run resumes from it", needed=False
    )
    lock: Path | None = read("uv.lock that installed the environment (recorded)", needed=False)


@dataclass(frozen=True)
class ClassifierPaths(StagePaths):
    data: Path = read("prepared data folder")
    model: Path = written("classifier .keras to write")
    report: Path = written("accuracy report JSON (DVC metrics)")


@dataclass(frozen=True)
class ExportPaths(StagePaths):
    generator: Path = read("trained generator .keras")
    training: Path = read("the train stage's JSON record")
    out: Path = written("ONNX file to write")
    lock: Path | None = read("uv.lock that installed the environment (recorded)", needed=False)


@dataclass(frozen=True)
class EvaluatePaths(StagePaths):
    onnx: Path = read("exported generator")
    generator: Path = read("the Keras generator it was exported from")
    classifier: Path = read("the MNIST classifier that scores samples")
    data: Path = read("prepared real images")
    metrics: Path = written("metrics JSON to write (DVC metrics)")
    class_shares: Path = written("JSON of each predicted digit's share")
    grid: Path = written("PNG of the first 64 samples")
    by_class: Path = written("PNG of samples by predicted digit")


@dataclass(frozen=True)
class AnimatePaths(StagePaths):
    samples: Path = read("folder of iter_NNNNNN.png grids (the train stage's)")
    generator: Path = read("trained generator .keras (finds its MLflow run)")
    training: Path = read("the train stage's JSON record")
    out: Path = written("GIF to write")


@dataclass(frozen=True)
class SitePaths(StagePaths):
    web: Path = read("the page's source folder (with node_modules from npm ci)")
    onnx: Path = read("the exported generator")
    metrics: Path = read("the evaluate stage's metrics JSON")
    out: Path = written("folder to build the site in (replaced whole)")
    animation: Path | None = read("the training animation (GIF) to show", needed=False)
