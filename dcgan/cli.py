"""The ``dcgan`` command: ``dcgan sample``, ``dcgan runs``, ``dcgan promote`` and ``dcgan bench``.

``dcgan sample`` runs on onnxruntime, NumPy and Pillow alone: it never imports TensorFlow,
so it starts fast and works where TensorFlow is absent."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from dcgan.errors import DcganError, run_main
from dcgan.files import atomic_path

log = logging.getLogger("dcgan.cli")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcgan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="generate digits from an exported generator (ONNX)")
    sample.add_argument("--model", default="models/generator.onnx", help="generator .onnx file")
    sample.add_argument("-n", "--num", type=_positive_int, default=64, help="how many images")
    sample.add_argument("--seed", type=int, default=0, help="seed of the noise z ~ N(0, 1)")
    sample.add_argument("--out", type=Path, help="grid PNG to write")
    sample.add_argument(
        "--npy", type=Path, help="also save the images, float32 (N, 28, 28, 1) in [-1, 1], as .npy"
    )
    sample.add_argument("--cols", type=_positive_int, help="grid columns (default: square)")
    runs = sub.add_parser(
        "runs", help="the MLflow runs that produced a model file, found by its SHA-256"
    )
    runs.add_argument("file", type=Path, help="models/generator.onnx or models/generator.keras")
    promote = sub.add_parser(
        "promote",
        help="point the registry alias 'champion' at the generator with the lowest FCD",
    )
    promote.add_argument("--name", default="dcgan-generator", help="registered model")
    promote.add_argument("--alias", default="champion", help="alias to move")
    bench = sub.add_parser("bench", help="training and inference speed, written to a JSON report")
    bench.add_argument(
        "--model",
        type=Path,
        default=Path("models/generator.onnx"),
        help="exported generator to time (a fresh one if missing)",
    )
    bench.add_argument("--out", type=Path, default=Path("reports/bench.json"), help="report")
    bench.add_argument(
        "--iterations",
        type=_positive_int,
        default=30,
        help="timed training iterations (median); the book loop gets half",
    )
    return parser


def bench_command(args: argparse.Namespace) -> None:
    from dcgan.bench import run  # imports TensorFlow; kept out of `dcgan sample`'s path

    run(args.out, args.model, args.iterations)


def runs_command(args: argparse.Namespace) -> None:
    from dcgan import environment
    from dcgan.pipeline.tracking import runs_for_file, tracking_uri

    if not args.file.is_file():
        raise DcganError(f"{args.file} not found; pass a generator file (.onnx or .keras)")
    runs = runs_for_file(args.file)
    if not runs:
        raise DcganError(
            f"no MLflow run at {tracking_uri()} produced {args.file}; set MLFLOW_TRACKING_URI "
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

    print(promote(args.name, args.alias))


def sample_command(args: argparse.Namespace) -> None:
    from dcgan.contract import draw_noise
    from dcgan.plots import save_grid
    from dcgan.sampling import generate, load_session, z_dim_of

    if args.out is None and args.npy is None:
        raise DcganError("nothing to write; pass --out samples.png and/or --npy samples.npy")
    session = load_session(args.model)
    images = generate(session, draw_noise(args.num, z_dim_of(session), args.seed))
    if args.out is not None:
        save_grid(images, args.out, cols=args.cols)
        log.info("wrote %d samples to %s", len(images), args.out)
    if args.npy is not None:
        with atomic_path(args.npy) as tmp, open(tmp, "wb") as f:
            np.save(f, images)
        log.info("wrote %s %s to %s", images.dtype, images.shape, args.npy)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "sample": sample_command,
        "runs": runs_command,
        "promote": promote_command,
        "bench": bench_command,
    }
    return run_main(lambda: commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
