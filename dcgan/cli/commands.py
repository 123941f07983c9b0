"""``dcgan runs``, ``dcgan promote``, ``dcgan bench`` and ``dcgan stack``: each a function of
the parsed arguments, each importing its heavy modules only when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcgan.errors import DcganError


def generator_artifact() -> Path:
    """The ONNX generator as dvc.yaml names it (the ``generator`` artifact)."""
    from dcgan.layout import artifact_path

    try:
        return Path(artifact_path("generator"))
    except DcganError as exc:
        raise DcganError(f"{exc}, or pass --model with the generator's .onnx file") from None


def bench_command(args: argparse.Namespace) -> None:
    from dcgan.config import load_config, params_file
    from dcgan.layout import stage_args

    train, export = load_config("train", args.params), load_config("export", args.params)
    # A file the user names must be the one timed: never a fresh generator in its place.
    for flag, path in (("--model", args.model), ("--keras", args.keras)):
        if path is not None and not path.is_file():
            raise DcganError(f"{flag} {path} not found; pass an existing file or drop {flag}")
    if args.model is not None:
        from dcgan.shipping.sampling import load_session

        load_session(args.model)  # not ONNX, or not a generator: one line, before TensorFlow
    model = args.model or generator_artifact()
    keras_model = args.keras or Path(stage_args("export")["generator"])

    from dcgan.machine.bench import run  # imports TensorFlow; kept out of `dcgan sample`'s path

    with params_file(args.params):
        run(args.out, model, keras_model, train, export, args.iterations)


def runs_command(args: argparse.Namespace) -> None:
    from dcgan.machine import environment
    from dcgan.tracking.lineage import runs_for_file
    from dcgan.tracking.store import safe_uri, tracking_uri

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
        from dcgan.shipping.sampling import load_session

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
    from dcgan.tracking.registry import promote
    from dcgan.tracking.store import tracking_uri

    if args.name is None:
        from dcgan.config import load_config

        args.name = load_config("evaluate", args.params).registered_model
    print(promote(args.name, args.alias, tracking_uri()))


def stack_command(args: argparse.Namespace) -> None:
    from dcgan import stack

    stack.command(args.action, args.dir, Path.cwd(), s3=args.s3)


def sweep_command(args: argparse.Namespace) -> None:
    from dcgan.sweep.driver import plan, sweep

    repo = Path.cwd()
    todo = plan(args.set_params, args.name, args.address, args.git_remote, args.dvc_remote, repo)
    sweep(todo, args.address, repo)
