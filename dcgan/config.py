"""Typed, locked configuration: one frozen dataclass per stage, loaded from params.yaml.

The field names are the params.yaml keys and the MLflow parameter names. Unknown keys,
missing keys, wrong types and out-of-range values are errors that name the key, raised
before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dcgan.errors import DcganError

PARAMS_FILE = "params.yaml"
PRECISIONS = ("float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored")


@dataclass(frozen=True)
class PrepareConfig:
    source: str  # "mnist" (the full set, offline), "sample" (5 000), "keras", or an .npz path
    test_fraction: float  # share of the "sample" source held out as the test split, per class
    seed: int  # seed of the stratified split of the "sample" source

    def __post_init__(self) -> None:
        _check(self.source.strip() != "", "prepare.source", "must not be empty", self.source)
        _check(
            0.0 < self.test_fraction < 1.0,
            "prepare.test_fraction",
            "must be between 0 and 1 (exclusive)",
            self.test_fraction,
        )
        _check(self.seed >= 0, "prepare.seed", "must be >= 0", self.seed)


@dataclass(frozen=True)
class TrainConfig:
    iterations: int  # training iterations; each is two D updates (real, fake) then one G update
    batch_size: int  # real images per D batch (and generated images per batch), as in the book
    sample_interval: int  # every this many iterations: record losses, save a grid, log to MLflow
    checkpoint_interval: int  # every this many iterations: save a checkpoint to resume from
    z_dim: int  # length of the noise vector z ~ N(0, 1)
    g_learning_rate: float  # Adam learning rate of the generator (Keras default 0.001)
    d_learning_rate: float  # Adam learning rate of the discriminator (Keras default 0.001)
    beta_1: float  # Adam beta_1 of both optimizers (Keras default 0.9)
    beta_2: float  # Adam beta_2 of both optimizers (Keras default 0.999)
    leaky_slope: float  # negative slope of every LeakyReLU (the book's alpha=0.01)
    seed: int  # seeds weight init, batch indices and noise; same seed -> same weights
    precision: str  # float32 (the book) | mixed_bfloat16 (faster on CPUs with AVX512-BF16/AMX)
    strategy: str  # default (one device) | mirrored (tf.distribute.MirroredStrategy)
    devices: str  # mirrored only: e.g. "GPU:0,GPU:1"; empty = every visible GPU
    experiment: str  # MLflow experiment name

    def __post_init__(self) -> None:
        for key in ("iterations", "batch_size", "sample_interval", "checkpoint_interval", "z_dim"):
            _check(
                getattr(self, key) > 0,
                f"train.{key}",
                "must be a positive integer",
                getattr(self, key),
            )
        for key in ("g_learning_rate", "d_learning_rate"):
            _check(getattr(self, key) > 0, f"train.{key}", "must be > 0", getattr(self, key))
        for key in ("beta_1", "beta_2"):
            _check(
                0.0 <= getattr(self, key) < 1.0,
                f"train.{key}",
                "must be in [0, 1)",
                getattr(self, key),
            )
        _check(self.leaky_slope >= 0, "train.leaky_slope", "must be >= 0", self.leaky_slope)
        _check(self.seed >= 0, "train.seed", "must be >= 0", self.seed)
        _check(
            self.experiment.strip() != "", "train.experiment", "must not be empty", self.experiment
        )


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int  # passes over the prepared real training images
    batch_size: int  # images per Adam step
    seed: int  # weight init, dropout and shuffling

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            _check(
                getattr(self, key) > 0,
                f"classifier.{key}",
                "must be a positive integer",
                getattr(self, key),
            )
        _check(self.seed >= 0, "classifier.seed", "must be >= 0", self.seed)


@dataclass(frozen=True)
class ExportConfig:
    opset: int  # ONNX opset; tf2onnx 1.17 supports 13..18
    optimize: bool  # rewrite tf2onnx's graph for onnxruntime (Gemm + Conv, no ConvTranspose)

    def __post_init__(self) -> None:
        _check(
            13 <= self.opset <= 18,
            "export.opset",
            "must be between 13 and 18 (tf2onnx 1.17)",
            self.opset,
        )


@dataclass(frozen=True)
class EvaluateConfig:
    num_samples: int  # generated images: ONNX vs Keras parity and the quality metrics
    seed: int  # seed of those noise vectors
    tolerance: float  # the stage fails if max |onnx - keras| exceeds this

    def __post_init__(self) -> None:
        _check(
            self.num_samples > 0,
            "evaluate.num_samples",
            "must be a positive integer",
            self.num_samples,
        )
        _check(self.seed >= 0, "evaluate.seed", "must be >= 0", self.seed)
        _check(self.tolerance > 0, "evaluate.tolerance", "must be > 0", self.tolerance)


STAGES: dict[str, type] = {
    "prepare": PrepareConfig,
    "train": TrainConfig,
    "classifier": ClassifierConfig,
    "export": ExportConfig,
    "evaluate": EvaluateConfig,
}

C = TypeVar("C")


def _check(ok: bool, key: str, requirement: str, value: Any) -> None:
    if not ok:
        raise DcganError(
            f"{PARAMS_FILE}: {key} {requirement}, got {value!r}; fix it in {PARAMS_FILE}"
        )


def read_params(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml into a dict, with a one-line error if it is missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DcganError(
            f"{path} not found; run from the repository root or pass --params"
        ) from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise DcganError(f"{path} is not valid YAML{where} ({problem}); fix the syntax") from None
    if not isinstance(params, dict):
        raise DcganError(
            f"{path} must be a mapping of stage blocks (prepare:, train:, ...); "
            f"got {type(params).__name__}"
        )
    return params


def _coerce(key: str, value: Any, kind: type) -> Any:
    def bad() -> DcganError:
        return DcganError(
            f"{PARAMS_FILE}: {key} must be {kind.__name__}, got {value!r} "
            f"({type(value).__name__}); fix it in {PARAMS_FILE}"
        )

    # bool is a subclass of int in Python; `iterations: true` is a typo, not 1.
    if isinstance(value, bool) and kind is not bool:
        raise bad()
    if kind is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind is int:
        if not isinstance(value, int):
            raise bad()
        return value
    if kind is float:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad()
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise TypeError(f"unsupported config field type {kind!r}")  # a bug, not user input


def config_from_dict(cls: type[C], block: Any, name: str) -> C:
    """Build ``cls`` from a params block; unknown, missing and mistyped keys are errors."""
    if not isinstance(block, dict):
        raise DcganError(
            f"{PARAMS_FILE}: {name} must be a mapping of keys, got {block!r}; "
            f"fix it in {PARAMS_FILE}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(block) - set(fields), key=str)
    if unknown:
        raise DcganError(
            f"{PARAMS_FILE}: unknown key {name}.{unknown[0]}; known keys are {', '.join(fields)}"
        )
    missing = [k for k in fields if k not in block]
    if missing:
        raise DcganError(f"{PARAMS_FILE}: missing key {name}.{missing[0]}; add it to {PARAMS_FILE}")
    kinds = typing.get_type_hints(cls)
    values = {k: _coerce(f"{name}.{k}", block[k], kinds[k]) for k in fields}
    return cls(**values)


def load_config(stage: str, path: str | os.PathLike[str] = PARAMS_FILE) -> Any:
    """Load the config block of one stage from params.yaml."""
    params = read_params(path)
    if stage not in params:
        raise DcganError(f"{path}: missing block {stage}:; add it to {path}")
    return config_from_dict(STAGES[stage], params[stage], stage)


def load_all(path: str | os.PathLike[str] = PARAMS_FILE) -> dict[str, Any]:
    """Load and check every stage block; unknown top-level blocks are errors too."""
    params = read_params(path)
    unknown = sorted(set(params) - set(STAGES), key=str)
    if unknown:
        raise DcganError(
            f"{path}: unknown block {unknown[0]}:; known blocks are {', '.join(STAGES)}"
        )
    return {stage: load_config(stage, path) for stage in STAGES}


def flat_params(prefix: str, cfg: Any) -> dict[str, Any]:
    """``train.iterations``-style names, as in params.yaml and MLflow."""
    return {f"{prefix}.{k}": v for k, v in dataclasses.asdict(cfg).items()}
