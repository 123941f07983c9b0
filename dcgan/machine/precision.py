"""``train.precision: auto``: the faster of float32 and mixed_bfloat16, measured on this machine;
on a GPU the fastest of float32, mixed_float16 and mixed_bfloat16, each with and without XLA.

Why a measurement: the instruction set does not predict the ratio. On an Intel Xeon whose
oneDNN reports AMX, the bfloat16 step ran 1.6x the float32 one (docs/performance.md); on one
with AVX512-BF16 and no AMX, 0.58x; an AMD EPYC with AVX512-BF16 and no AMX was reported at
1.4x. So ``auto`` times a few compiled iterations of the run's own model and batch in each
precision, in a child process (fresh threads; Keras' dtype state in the training process is
left alone), and picks the faster. The figures are cached per machine (CPU model and cores),
TensorFlow version and model shape, in ``$DCGAN_CACHE_DIR/precision.json`` (default
``~/.cache/dcgan``): the second run on a machine costs nothing and resolves the same way,
so its outputs stay byte for byte what the first run's were.

A measurement says which precision is faster, not whether it trains as well: the default
stays float32 until bfloat16's samples have been compared with float32's (docs/performance.md).
Delete the cache file to measure again (e.g. after a measurement taken on a busy machine).

The train stage resolves the choice and hands :class:`dcgan.gan.training.GAN` a concrete
precision: the model itself starts no process. Imports run one way: this module times the
GAN (in its child), the GAN never asks this module.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import dcgan
from dcgan.config import AUTO, BFLOAT16, FLOAT16, FLOAT32
from dcgan.errors import DcganError
from dcgan.files import atomic_path
from dcgan.machine.devices import CPU
from dcgan.machine.timing import machine_name, median_seconds

if TYPE_CHECKING:
    from dcgan.config import TrainConfig

log = logging.getLogger(__name__)
# The folder that holds the dcgan package: the timing child imports it from there.
SOURCE_ROOT = Path(dcgan.__file__).resolve().parents[1]

MEASURED = (FLOAT32, BFLOAT16)  # on a CPU: float16 is emulated there, and XLA not asked for
XLA = "+xla"  # a recipe's suffix: the step compiled by XLA (jit_compile)
CACHE_ENV = "DCGAN_CACHE_DIR"
WARMUP, STEPS = 1, 5  # the first call traces; the median of five is steady on a busy box
TIMEOUT_S = 600
HOPELESS = 2.0  # a timed step this many times the fastest precision's ends its timing


Timer = Callable[["TrainConfig", tuple[str, ...]], Mapping[str, float]]


@dataclass(frozen=True)
class Choice:
    """What ``train.precision`` resolved to, why, and (for auto) the seconds per iteration
    measured in each precision."""

    precision: str
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)
    on: str = ""  # auto: what the figures hold for (machine_key), the cache's key
    jit_compile: bool = False  # auto on a GPU: XLA measured faster

    @property
    def measured(self) -> bool:
        return bool(self.seconds)


def candidates(device: str = CPU, strategy: str = "default") -> tuple[str, ...]:
    """The recipes ``auto`` times, the book's first (a tie keeps it). On a CPU float32 and
    mixed_bfloat16, as always; on a GPU also mixed_float16, and each with XLA on one device
    (the mirrored step is not compiled by XLA)."""
    if device == CPU:
        return MEASURED
    precisions = (FLOAT32, FLOAT16, BFLOAT16)
    if strategy != "default":
        return precisions
    return tuple(r for p in precisions for r in (p, p + XLA))


def split(recipe: str) -> tuple[str, bool]:
    """``"mixed_float16+xla"`` -> ``("mixed_float16", True)``."""
    return recipe.removesuffix(XLA), recipe.endswith(XLA)


def machine_key(cfg: TrainConfig, machine: str | None = None) -> str:
    """What a measurement holds for: this machine (:func:`machine_name`), this model shape
    and batch. Another machine, TF upgrade or batch size measures again."""
    return f"{machine or machine_name()} | batch {cfg.batch_size} | z_dim {cfg.z_dim}"


def cache_path() -> Path:
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dcgan"
    return Path(root) / "precision.json"


def _read_cache(path: Path) -> dict[str, dict[str, float]]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: measure again
        return {}
    return cache if isinstance(cache, dict) else {}


def _valid(seconds: object, recipes: tuple[str, ...] = MEASURED) -> bool:
    return isinstance(seconds, dict) and all(
        isinstance(seconds.get(p), (int, float)) and seconds[p] > 0 for p in recipes
    )


def _write_cache(path: Path, key: str, seconds: Mapping[str, float]) -> None:
    cache = _read_cache(path)
    cache[key] = dict(seconds)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(cache, indent=2, sort_keys=True) + "\n")
    except OSError as exc:  # a read-only home still trains; it measures next time too
        log.warning("could not cache the precision measurement in %s: %s", path, exc)


def measure(cfg: TrainConfig, recipes: tuple[str, ...] = MEASURED) -> dict[str, float]:
    """Median seconds per compiled training iteration of ``cfg``'s model and batch in each
    recipe (a precision, ``+xla`` for XLA), on one device, timed in a child process."""
    command = [
        sys.executable,
        "-m",
        "dcgan.machine.precision",
        json.dumps(asdict(cfg)),
        *([json.dumps(list(recipes))] if recipes != MEASURED else []),
    ]
    pythonpath = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise DcganError(f"the precision measurement took over {TIMEOUT_S} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DcganError(f"the precision measurement failed (exit {done.returncode}: {last})")
    seconds = json.loads(lines[-1])
    if not _valid(seconds, recipes):
        raise DcganError(f"the precision measurement printed {lines[-1]!r}")
    return {p: float(seconds[p]) for p in recipes}


def resolve(cfg: TrainConfig, timer: Timer | None = None, device: str = CPU) -> Choice:
    """The precision to train in. ``auto``: the fastest measured recipe (:func:`candidates`
    for ``device``, dcgan.machine.devices' record), from the cache or from ``timer`` (default
    :func:`measure`); anything else stays as params.yaml says, without XLA."""
    if cfg.precision != AUTO:
        return Choice(cfg.precision, "set in params.yaml")
    recipes = candidates(device, cfg.strategy)
    # A GPU's figures hold for that GPU: its model joins the key (a CPU's key is as it was).
    machine = machine_name() if device == CPU else f"{machine_name()} | {device}"
    key, path = machine_key(cfg, machine), cache_path()
    seconds = _read_cache(path).get(key)
    source = f"cached in {path}"
    if not _valid(seconds, recipes):
        log.info("train.precision auto: timing %d iterations in each of %s", STEPS, recipes)
        try:
            seconds = dict((timer or measure)(cfg, recipes))
            if not _valid(seconds, recipes):
                raise DcganError(f"the timer returned {seconds!r}")
        except DcganError as exc:
            log.warning("train.precision auto: %s; training in float32", exc)
            return Choice(FLOAT32, f"auto: float32, not measured ({exc})")
        _write_cache(path, key, seconds)
        source = f"measured now, cached in {path}"
    assert seconds is not None
    fastest = min(recipes, key=lambda r: seconds[r])  # a tie keeps float32 (listed first)
    measured = {r: float(seconds[r]) for r in recipes}
    precision_name, jit_compile = split(fastest)
    return Choice(
        precision_name, _reason(measured, fastest, machine, source), measured, key, jit_compile
    )


def _reason(seconds: dict[str, float], fastest: str, machine: str, source: str) -> str:
    """One line: the figures, the winner, where they were taken and kept."""
    if tuple(seconds) == MEASURED:  # a CPU: the line the runs have always carried
        ratio = seconds[FLOAT32] / seconds[BFLOAT16]
        return (
            f"auto: {seconds[FLOAT32]:.3f} s/iteration in float32, "
            f"{seconds[BFLOAT16]:.3f} in mixed_bfloat16 (bfloat16 {ratio:.2f}x float32's speed) "
            f"on {machine}; {source}"
        )
    figures = ", ".join(f"{s:.4f} in {r}" for r, s in seconds.items())
    speed = seconds[FLOAT32] / seconds[fastest]
    return (
        f"auto: s/iteration {figures}; {fastest} is {speed:.2f}x float32's speed "
        f"on {machine}; {source}"
    )


def _time_steps(cfg: TrainConfig, recipes: tuple[str, ...] = MEASURED) -> dict[str, float]:
    """In the child: build the GAN in each recipe on random images on one device, and time
    its steps."""
    import numpy as np

    from dcgan.gan.training import GAN

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (max(cfg.batch_size, 256), 28, 28, 1)).astype(np.float32)
    seconds: dict[str, float] = {}
    for name in recipes:
        precision_name, jit_compile = split(name)
        one_device = replace(cfg, precision=precision_name, strategy="default", devices="")
        gan = GAN(one_device, images, jit_compile=jit_compile)
        # Emulated bfloat16 can run 10x slower: one step that far behind cannot win.
        hopeless = HOPELESS * min(seconds.values()) if seconds else math.inf
        seconds[name] = median_seconds(
            lambda gan=gan: float(gan.train_step()["g_loss"]),  # float() waits for the step
            STEPS,
            warmup=WARMUP,
            stop_above=hopeless,
        )
    return seconds


def main(argv: list[str] | None = None) -> None:
    """The child: argv[0] is the train block as JSON, argv[1] (optional) the recipes as a
    JSON list; prints the seconds as JSON."""
    from dcgan.config import TrainConfig

    args = argv if argv is not None else sys.argv[1:]
    recipes = tuple(json.loads(args[1])) if len(args) > 1 else MEASURED
    print(json.dumps(_time_steps(TrainConfig(**json.loads(args[0])), recipes)))


if __name__ == "__main__":
    main()
