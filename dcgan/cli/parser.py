"""``dcgan --help``: every subcommand's flags, their types and their defaults, in one
parser read in one place as the user reads it. Light at import (the standard library and
dcgan.config): ``dcgan sample`` starts without TensorFlow."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from dcgan.config import PARAMS_FILE

# What `dcgan --help` says (the docstring above is for readers of the code, in RST).
DESCRIPTION = (
    "The DCGAN of GANs in Action (chapter 4) as a DVC + MLflow + ONNX pipeline: sample digits "
    "from the exported generator, find the runs behind a model file, promote the best one, "
    "benchmark, or run a local team stack. The pipeline itself runs with `dvc repro`."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _steps(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a walk needs at least 2 steps, got {value}")
    return value


def _seed(text: str) -> int:
    """NumPy seeds are non-negative; 32 bits, as for every seed in params.yaml."""
    from dcgan.config import SEED_RANGE

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    low, high = SEED_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a seed in [{low}, {high}], got {value}")
    return value


class _HelpFormatter(argparse.HelpFormatter):
    """Adds an option's default to its help, unless it has none or the help gives it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or any(
            action.default is no for no in (None, False, argparse.SUPPRESS)
        ):
            return text
        return text if "default" in text else f"{text} (default: %(default)s)"


def _command(sub, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary is both its line in `dcgan --help` and its
    description in `dcgan NAME --help`."""
    return sub.add_parser(name, help=summary, description=summary, formatter_class=_HelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    # Long on purpose: every subcommand's flags, in the order --help shows them.
    from dcgan.tracking.registry import CHAMPION  # light at import, like this module

    parser = argparse.ArgumentParser(
        prog="dcgan", description=DESCRIPTION, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", help="debug logs, MLflow's included")
    loud.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sample = _command(sub, "sample", "generate digits from an exported generator (ONNX)")
    sample.add_argument(
        "--model", type=Path, help="generator .onnx file (default: dvc.yaml's generator artifact)"
    )
    sample.add_argument(
        "-n",
        "--num",
        type=_positive_int,
        help="how many images (default 64); with --interpolate, how many walks (default 8)",
    )
    sample.add_argument("--seed", type=_seed, default=0, help="seed of the noise z ~ N(0, 1)")
    sample.add_argument(
        "--interpolate",
        type=_steps,
        metavar="K",
        help="walk K steps (spherical interpolation) from the noise of --seed to that of "
        "--to-seed: one walk per row, K columns",
    )
    sample.add_argument(
        "--to-seed", type=_seed, help="with --interpolate: seed of the walks' ends (default seed+1)"
    )
    sample.add_argument("--out", type=Path, help="grid PNG to write (.png)")
    sample.add_argument(
        "--npy", type=Path, help="also save the images, float32 (N, 28, 28, 1) in [-1, 1], as .npy"
    )
    sample.add_argument("--cols", type=_positive_int, help="grid columns (default: square)")
    runs = _command(sub, "runs", "the MLflow runs that produced a model file, found by its SHA-256")
    runs.add_argument("file", type=Path, help="a generator file, .onnx or .keras")
    promote = _command(
        sub,
        "promote",
        f"point the registry alias '{CHAMPION}' at the generator with the lowest FCD",
    )
    promote.add_argument(
        "--name", help="registered model (default: evaluate.registered_model in --params)"
    )
    promote.add_argument("--params", type=Path, default=Path(PARAMS_FILE), help="params file")
    promote.add_argument("--alias", default=CHAMPION, help="alias to move")
    bench = _command(sub, "bench", "training and inference speed, written to a JSON report")
    bench.add_argument(
        "--model",
        type=Path,
        help="exported generator to time; it must exist (default: dvc.yaml's generator "
        "artifact, or a fresh one of the params' shape if that is not built yet)",
    )
    bench.add_argument(
        "--keras",
        type=Path,
        help="the Keras generator it was exported from; it must exist (default: the export "
        "stage's input)",
    )
    bench.add_argument(
        "--params", type=Path, default=Path(PARAMS_FILE), help="params file (train, export)"
    )
    bench.add_argument("--out", type=Path, default=Path("reports/bench.json"), help="report")
    bench.add_argument(
        "--iterations",
        type=_positive_int,
        default=30,
        help="timed training iterations (median); the book loop gets half",
    )
    stack = _command(
        sub,
        "stack",
        "a local team stack: MLflow server (auth) on PostgreSQL, artifacts and DVC in S3",
    )
    stack.add_argument(
        "action",
        choices=["up", "env", "remote", "status", "down"],
        help="up: start (prints the exports); env: print them again; remote: make it this "
        "clone's DVC remote; status; down: stop and remove its folder",
    )
    stack.add_argument(
        "--dir", type=Path, default=Path(".stack"), help="state folder (default: .stack)"
    )
    stack.add_argument(
        "--s3",
        action="store_true",
        help="with env: the S3 keys too, for a DVC remote on the stack's bucket that the "
        "committed .dvc/config names (a sweep's trials clone it and have no config.local)",
    )
    sweep = _command(
        sub,
        "sweep",
        "a grid of DVC experiments as Ray tasks across machines, pushed to the remotes",
    )
    sweep.add_argument(
        "-S",
        "--set-param",
        dest="set_params",
        action="append",
        required=True,
        metavar="KEY=VALUES",
        help="as dvc exp run --queue -S: train.seed=0,1 or 'train.seed=range(0,3)'; repeat it",
    )
    sweep.add_argument("-n", "--name", help="the experiments' prefix (default: sweep-<commit>)")
    sweep.add_argument(
        "--address", help="join this Ray cluster (default: start one here, one trial at a time)"
    )
    sweep.add_argument("--git-remote", default="origin", help="git remote the workers clone")
    sweep.add_argument(
        "--dvc-remote", help="DVC remote in .dvc/config (default: the project's default)"
    )
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml's)."""
    try:
        return metadata.version("dcgan")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed; ./run shell installs it)"
