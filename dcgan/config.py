"""Typed, locked configuration: one frozen dataclass per stage, loaded from params.yaml.

The field names are the params.yaml keys and the MLflow parameter names. Unknown keys,
missing keys, wrong types and out-of-range values are errors that name the key, raised
before any work starts.

Over 300 lines on purpose: every params.yaml key is a field here with its one-line comment
and its check, block by block as params.yaml reads (``TrainConfig.__post_init__`` is long
because the train block has most keys); split, a key's meaning and its check would sit in
two files.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dcgan.errors import DcganError

PARAMS_FILE = "params.yaml"
# train.precision: Keras mixed-precision policy names (mixed_float16 is for GPUs: a
# loss-scaled step), and auto, which dcgan/machine/precision.py resolves by timing them.
FLOAT32, BFLOAT16, FLOAT16, AUTO = "float32", "mixed_bfloat16", "mixed_float16", "auto"
PRECISIONS = (FLOAT32, BFLOAT16, FLOAT16, AUTO)
STRATEGIES = ("default", "mirrored")
D_FAKES = ("predict", "training")  # where D's fake batch comes from: see dcgan/gan/training.py
# train.keep: which of G's iterations the stage ships (dcgan/gan/shipped.py).
KEEP_LAST, KEEP_BEST = "last", "best"
KEEPS = (KEEP_LAST, KEEP_BEST)
# Keras seeds NumPy's legacy generator, which takes 32-bit seeds.
SEED_RANGE = (0, 2**32 - 1)
SEED_REASON = "NumPy's legacy seeding, which Keras uses, takes 32-bit seeds"
DEVICE_NAME = re.compile(r"(CPU|GPU):\d+")  # an item of train.devices

MAX_EXPERIMENT_NAME = 256  # MLflow's database column for experiment names
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")


def listed_devices(devices: str) -> list[str]:
    """train.devices' items ("GPU:0, GPU:1" -> ["GPU:0", "GPU:1"]); none when it is empty. An
    empty item stays, for the check to refuse."""
    return [d.strip() for d in devices.split(",")] if devices.strip() else []


class ParamsError(DcganError):
    """A problem with a value in the params file: ``<file>: <problem>[; <fix> <file>]``, the
    problem naming the key. The file is the one the entry point was given (``--params``):
    :func:`load_config` and :func:`params_file` fill it in, params.yaml until then."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix
        self.file: str | None = None

    def __str__(self) -> str:
        file = self.file or PARAMS_FILE
        return f"{file}: {self.problem}" + (f"; {self.fix} {file}" if self.fix else "")


def params_error(message: str) -> ParamsError:
    """A problem with a value in the params file (``message`` names the key)."""
    return ParamsError(message)


@contextmanager
def params_file(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Name ``path`` in the params errors raised inside: the stages' work finds some values
    unusable only once it has the data or the machine (a batch larger than the data). None: a
    stage without a params block."""
    try:
        yield
    except ParamsError as exc:
        exc.file = exc.file or (str(path) if path is not None else None)
        raise


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
        _check_seed("prepare.seed", self.seed)


@dataclass(frozen=True)
class TrainConfig:
    iterations: int  # training iterations; each is two D updates (real, fake) then one G update
    batch_size: int  # real images per D batch (and generated images per batch), as in the book
    sample_interval: int  # every this many iterations: record losses, save a grid, log to MLflow
    checkpoint_interval: int  # every this many iterations: save a checkpoint to resume from
    eval_interval: int  # every this many iterations and at the last: score G's samples; 0 = off
    eval_samples: int  # generated images each score is computed over (FCD, MNIST score, shares)
    eval_seed: int  # seeds their fixed noise: its own generator, never the training step's
    z_dim: int  # length of the noise vector z ~ N(0, 1)
    g_learning_rate: float  # Adam learning rate of the generator (Keras default 0.001)
    d_learning_rate: float  # Adam learning rate of the discriminator (Keras default 0.001)
    beta_1: float  # Adam beta_1 of both optimizers (Keras default 0.9)
    beta_2: float  # Adam beta_2 of both optimizers (Keras default 0.999)
    leaky_slope: float  # negative slope of every LeakyReLU (the book's alpha=0.01)
    d_fakes: str  # D's fake batch from G in inference mode (predict, the book) or training mode
    label_smoothing: float  # one-sided: D's real label is 1 - this (the book: 0)
    ema_decay: float  # ship an exponential moving average of G's weights at this decay; 0 = off
    keep: str  # last (G of the last iteration) | best (of the lowest FCD scored in training)
    lr_decay_from: float  # both learning rates fall linearly to 0 from this fraction of the run
    seed: int  # seeds weight init, batch indices and noise; same seed -> same weights
    precision: str  # float32 (the book) | mixed_bfloat16 | mixed_float16 | auto (measured)
    strategy: str  # default (one device) | mirrored (tf.distribute.MirroredStrategy)
    devices: str  # mirrored only: e.g. "GPU:0,GPU:1"; empty = every visible GPU
    experiment: str  # MLflow experiment name

    def __post_init__(self) -> None:
        # One check per key, in the block's order: long because the block is.
        for key in ("iterations", "batch_size", "sample_interval", "checkpoint_interval", "z_dim"):
            _check(
                getattr(self, key) > 0,
                f"train.{key}",
                "must be a positive integer",
                getattr(self, key),
            )
        _check(
            self.eval_interval >= 0,
            "train.eval_interval",
            "must be 0 (no scoring during training) or a positive integer",
            self.eval_interval,
        )
        _check(
            self.eval_samples > 0,
            "train.eval_samples",
            "must be a positive integer",
            self.eval_samples,
        )
        _check_seed("train.eval_seed", self.eval_seed)
        _check_range(
            "train.iterations",
            self.iterations,
            1,
            10_000_000,
            "the book trains 20 000; 10 million take weeks on a CPU",
        )
        for key in ("g_learning_rate", "d_learning_rate"):
            _check_range(
                f"train.{key}",
                getattr(self, key),
                0.0,
                1.0,
                "Adam steps beyond 1 diverge at once; the book uses 0.001",
                low_open=True,
            )
        for key in ("beta_1", "beta_2"):
            _check(
                0.0 <= getattr(self, key) < 1.0,
                f"train.{key}",
                "must be in [0, 1) (Adam's moment decay)",
                getattr(self, key),
            )
        _check_range(
            "train.leaky_slope",
            self.leaky_slope,
            0.0,
            1.0,
            "a LeakyReLU slope above 1 amplifies negative inputs; the book uses 0.01",
        )
        _check_choice("train.d_fakes", self.d_fakes, D_FAKES)
        _check(
            0.0 <= self.label_smoothing < 0.5,
            "train.label_smoothing",
            "must be in [0, 0.5) (D's real label is 1 minus it; at 0.5 real and fake look alike)",
            self.label_smoothing,
        )
        _check(
            0.0 <= self.ema_decay < 1.0,
            "train.ema_decay",
            "must be in [0, 1) (0 = no averaged generator; 0.999 averages over ~1 000 iterations)",
            self.ema_decay,
        )
        _check_choice("train.keep", self.keep, KEEPS)
        _check(
            self.keep == KEEP_LAST or self.eval_interval > 0,
            "train.keep",
            "must be last when train.eval_interval is 0 (best keeps the generator of the "
            "lowest FCD scored in training, and nothing is scored); set an eval_interval, or "
            "keep: last",
            self.keep,
        )
        _check(
            0.0 <= self.lr_decay_from < 1.0,
            "train.lr_decay_from",
            "must be in [0, 1): the fraction of the run after which both learning rates fall "
            "linearly to 0 (0 = constant)",
            self.lr_decay_from,
        )
        _check_seed("train.seed", self.seed)
        _check_choice("train.precision", self.precision, PRECISIONS)
        _check_choice("train.strategy", self.strategy, STRATEGIES)
        if self.devices.strip():
            _check(
                self.strategy == "mirrored",
                "train.devices",
                "is only used with train.strategy: mirrored; set the strategy or empty the list",
                self.devices,
            )
            for device in listed_devices(self.devices):
                _check(
                    DEVICE_NAME.fullmatch(device) is not None,
                    "train.devices",
                    "must list devices such as GPU:0,GPU:1 (CPU:N or GPU:N)",
                    self.devices,
                )
        _check(
            self.experiment.strip() != "" and self.experiment == self.experiment.strip(),
            "train.experiment",
            "must be a name without leading or trailing spaces",
            self.experiment,
        )
        _check(
            len(self.experiment) <= MAX_EXPERIMENT_NAME,
            "train.experiment",
            f"must be at most {MAX_EXPERIMENT_NAME} characters (MLflow's limit)",
            self.experiment,
        )


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int  # passes over the prepared real training images
    batch_size: int  # images per Adam step
    seed: int  # weight init, dropout and shuffling

    def __post_init__(self) -> None:
        _check(self.epochs > 0, "classifier.epochs", "must be a positive integer", self.epochs)
        _check_range(
            "classifier.epochs",
            self.epochs,
            1,
            1000,
            "the CNN converges in about 6 epochs on MNIST",
        )
        _check(
            self.batch_size > 0,
            "classifier.batch_size",
            "must be a positive integer",
            self.batch_size,
        )
        _check_seed("classifier.seed", self.seed)


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
    registered_model: str  # MLflow registered model each evaluated generator is a version of

    def __post_init__(self) -> None:
        _check_range(
            "evaluate.num_samples",
            self.num_samples,
            2,
            1_000_000,
            "the Fréchet distance needs a covariance, so at least 2; FID's convention is 10 000",
        )
        _check_seed("evaluate.seed", self.seed)
        _check_range(
            "evaluate.tolerance",
            self.tolerance,
            0.0,
            2.0,
            "images lie in [-1, 1], so no two differ by more than 2",
            low_open=True,
        )
        _check(
            MODEL_NAME.fullmatch(self.registered_model) is not None,
            "evaluate.registered_model",
            "must be a name of letters, digits, '.', '_' and '-' (MLflow's registry)",
            self.registered_model,
        )


@dataclass(frozen=True)
class NoParams:
    """The config of a stage without a params block (animate, site), so that every stage's
    ``run`` takes ``(cfg, paths)``."""


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
        raise ParamsError(f"{key} {requirement}, got {value!r}", fix="fix it in")


def _check_range(
    key: str, value: float, low: float, high: float, reason: str, low_open: bool = False
) -> None:
    inside = (low < value if low_open else low <= value) and value <= high
    bracket = "(" if low_open else "["
    _check(inside, key, f"must be in {bracket}{_num(low)}, {_num(high)}] ({reason})", value)


def _num(x: float) -> str:
    return f"{x:_}" if isinstance(x, int) else f"{x:g}"


def _check_seed(key: str, value: int) -> None:
    _check_range(key, value, *SEED_RANGE, SEED_REASON)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, f"must be one of {', '.join(choices)}", value)


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
    def bad() -> ParamsError:
        return ParamsError(
            f"{key} must be {kind.__name__}, got {value!r} ({type(value).__name__})",
            fix="fix it in",
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
        raise ParamsError(f"{name} must be a mapping of keys, got {block!r}", fix="fix it in")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(block) - set(fields), key=str)
    if unknown:
        raise ParamsError(f"unknown key {name}.{unknown[0]}; known keys are {', '.join(fields)}")
    missing = [k for k in fields if k not in block]
    if missing:
        raise ParamsError(f"missing key {name}.{missing[0]}", fix="add it to")
    kinds = typing.get_type_hints(cls)
    values = {k: _coerce(f"{name}.{k}", block[k], kinds[k]) for k in fields}
    return cls(**values)


def load_config(stage: str, path: str | os.PathLike[str] = PARAMS_FILE) -> Any:
    """Load the config block of one stage from params.yaml."""
    params = read_params(path)
    if stage not in params:
        raise DcganError(f"{path}: missing block {stage}:; add it to {path}")
    with params_file(path):
        return config_from_dict(STAGES[stage], params[stage], stage)


def last_only(cfg: TrainConfig) -> list[str]:
    """The intervals longer than the run, which then act at the last iteration only (the loop
    always records there): a short run such as ``-S train.iterations=100`` just trains."""
    return [
        f"train.{key}={getattr(cfg, key)}"
        for key in ("sample_interval", "eval_interval")
        if getattr(cfg, key) > cfg.iterations
    ]


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
