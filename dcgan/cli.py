"""The ``dcgan`` command: ``dcgan sample``, ``dcgan runs``, ``dcgan promote``, ``dcgan bench``
and ``dcgan stack``.

``dcgan sample`` runs on onnxruntime, NumPy and Pillow alone: it never imports TensorFlow,
so it starts fast and works where TensorFlow is absent.

Over 300 lines, and ``build_parser`` over 60, on purpose: one parser for every subcommand,
read in one place as the user reads ``dcgan --help``; each command's work is a function of
its own, and each imports its heavy modules only when it runs."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from dcgan.config import PARAMS_FILE
from dcgan.errors import DcganError, log_level, run_main
from dcgan.files import atomic_path

log = logging.getLogger("dcgan.cli")

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
    from dcgan.pipeline.registry import CHAMPION  # stdlib-only at import, like this module

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
    return parser


def _generator_artifact() -> Path:
    """The ONNX generator as dvc.yaml names it (the ``generator`` artifact)."""
    from dcgan.pipeline.layout import artifact_path

    try:
        return Path(artifact_path("generator"))
    except DcganError as exc:
        raise DcganError(f"{exc}, or pass --model with the generator's .onnx file") from None


def bench_command(args: argparse.Namespace) -> None:
    from dcgan.config import load_config, params_file
    from dcgan.pipeline.layout import stage_args

    train, export = load_config("train", args.params), load_config("export", args.params)
    # A file the user names must be the one timed: never a fresh generator in its place.
    for flag, path in (("--model", args.model), ("--keras", args.keras)):
        if path is not None and not path.is_file():
            raise DcganError(f"{flag} {path} not found; pass an existing file or drop {flag}")
    if args.model is not None:
        from dcgan.sampling import load_session

        load_session(args.model)  # not ONNX, or not a generator: one line, before TensorFlow
    model = args.model or _generator_artifact()
    keras_model = args.keras or Path(stage_args("export")["generator"])

    from dcgan.bench import run  # imports TensorFlow; kept out of `dcgan sample`'s path

    with params_file(args.params):
        run(args.out, model, keras_model, train, export, args.iterations)


def runs_command(args: argparse.Namespace) -> None:
    from dcgan import environment
    from dcgan.pipeline.lineage import runs_for_file
    from dcgan.pipeline.store import safe_uri, tracking_uri

    if not args.file.is_file():
        raise DcganError(f"{args.file} not found; pass a generator file (.onnx or .keras)")
    uri = tracking_uri()  # the one resolution of this process
    runs = runs_for_file(args.file, uri)
    if not runs:
        raise DcganError(
            f"no MLflow run at {safe_uri(uri)} produced {args.file}; set "
            "MLFLOW_TRACKING_URI "
            "to the store it was trained with"
        )
    if args.file.suffix == ".onnx":
        from dcgan.sampling import load_session

        try:
            meta = load_session(args.file).get_modelmeta().custom_metadata_map
        except DcganError:  # the runs are found by the bytes alone; the metadata is a bonus
            meta = {}
        print(f"{args.file}: exported in {environment.summary(environment.from_tags(meta))}")
    for run in runs:
        print(
            f"{run.info.run_id}  {run.info.run_name}  {run.info.status}  "
            f"experiment {run.info.experiment_id}  runs:/{run.info.run_id}/generator"
        )
        print(f"  trained in {environment.summary(environment.from_tags(run.data.tags))}")


def promote_command(args: argparse.Namespace) -> None:
    from dcgan.pipeline.registry import promote
    from dcgan.pipeline.store import tracking_uri

    if args.name is None:
        from dcgan.config import load_config

        args.name = load_config("evaluate", args.params).registered_model
    print(promote(args.name, args.alias, tracking_uri()))


# One PNG grid holds at most 64 x 64 tiles (1 792 px square); larger -n goes to --npy alone.
MAX_GRID_IMAGES = 4096
# Images generated per onnxruntime call when streaming to --npy: ~13 MB of pixels at a time.
SAMPLE_CHUNK = 4096


def sample_command(args: argparse.Namespace) -> None:
    import shutil

    from dcgan.contract import IMAGE_SHAPE, draw_noise, noise_chunks
    from dcgan.plots import save_grid
    from dcgan.sampling import generate, load_session, z_dim_of

    if args.out is None and args.npy is None:
        raise DcganError("nothing to write; pass --out samples.png and/or --npy samples.npy")
    for flag, path, suffix in (("--out", args.out, ".png"), ("--npy", args.npy, ".npy")):
        if path is not None and path.suffix.lower() != suffix:  # never a PNG named .jpg
            raise DcganError(
                f"{flag} {path}: {flag} writes {suffix[1:].upper()} only; "
                f"give the file the {suffix} suffix"
            )
    if args.interpolate is not None:
        return interpolate_command(args)
    if args.to_seed is not None:
        raise DcganError("--to-seed only applies to --interpolate K; add it or drop --to-seed")
    args.num = 64 if args.num is None else args.num
    if args.out is not None and args.num > MAX_GRID_IMAGES:
        raise DcganError(
            f"-n {args.num} is too many images for one grid (at most {MAX_GRID_IMAGES}); "
            "lower -n, or write only --npy"
        )
    if args.npy is not None:
        needed = args.num * int(np.prod(IMAGE_SHAPE)) * 4
        free = shutil.disk_usage(args.npy.resolve().parent if args.npy.parent.exists() else ".")
        if needed > free.free:
            raise DcganError(
                f"-n {args.num} needs {needed / 1e9:,.1f} GB for {args.npy} and "
                f"{free.free / 1e9:,.1f} GB are free there; lower -n"
            )
    session = load_session(args.model or _generator_artifact())
    z_dim = z_dim_of(session)
    if args.out is not None:  # a grid's worth: small enough to hold at once
        images = generate(session, draw_noise(args.num, z_dim, args.seed))
        save_grid(images, args.out, cols=args.cols)
        log.info("wrote %d samples to %s", len(images), args.out)
    if args.npy is not None:
        shape = (args.num, *IMAGE_SHAPE)
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        with atomic_path(args.npy) as tmp, open(tmp, "wb") as f:
            # The .npy header, then the images appended chunk by chunk: memory stays at one
            # chunk for any -n (a memory map would count every written page as resident).
            np.lib.format.write_array_header_1_0(f, header)
            for z in noise_chunks(args.num, z_dim, args.seed, SAMPLE_CHUNK):
                f.write(generate(session, z).astype("<f4", copy=False).tobytes())
        log.info("wrote float32 %s to %s", shape, args.npy)


def interpolate_command(args: argparse.Namespace) -> None:
    """``dcgan sample --interpolate K``: walk i runs from image i of ``dcgan sample -n N
    --seed S`` to image i of ``dcgan sample -n N --seed T``, in K steps."""
    from dcgan.config import SEED_RANGE
    from dcgan.contract import draw_noise
    from dcgan.latent import walks
    from dcgan.plots import save_grid
    from dcgan.sampling import generate, load_session, z_dim_of

    if args.cols is not None:
        raise DcganError("--cols does not apply to --interpolate K (K columns, a walk per row)")
    n, steps = (8 if args.num is None else args.num), args.interpolate
    to_seed = args.to_seed if args.to_seed is not None else (args.seed + 1) % (SEED_RANGE[1] + 1)
    if n * steps > MAX_GRID_IMAGES:
        raise DcganError(
            f"{n} walks of {steps} steps are {n * steps} images, more than one grid holds "
            f"({MAX_GRID_IMAGES}); lower -n or K"
        )
    session = load_session(args.model or _generator_artifact())
    z_dim = z_dim_of(session)
    z = walks(draw_noise(n, z_dim, args.seed), draw_noise(n, z_dim, to_seed), steps)
    images = generate(session, z)
    if args.out is not None:
        save_grid(images, args.out, cols=steps)
        log.info(
            "wrote %d walks of %d steps (seed %d -> %d) to %s",
            n,
            steps,
            args.seed,
            to_seed,
            args.out,
        )
    if args.npy is not None:
        with atomic_path(args.npy) as tmp, open(tmp, "wb") as f:
            np.save(f, images.astype("<f4", copy=False))
        log.info("wrote float32 %s to %s", images.shape, args.npy)


def stack_command(args: argparse.Namespace) -> None:
    from dcgan import stack

    stack.command(args.action, args.dir, Path.cwd())


def version() -> str:
    """The installed package's version (pyproject.toml's)."""
    try:
        return metadata.version("dcgan")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed; ./run shell installs it)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "sample": sample_command,
        "runs": runs_command,
        "promote": promote_command,
        "bench": bench_command,
        "stack": stack_command,
    }

    return run_main(
        lambda: commands[args.command](args), level=lambda: log_level(args.verbose, args.quiet)
    )


if __name__ == "__main__":
    sys.exit(main())
