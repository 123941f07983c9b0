"""train: the book's DCGAN on the prepared data, logged to MLflow; the work is in
dcgan.pipeline.train. Every path comes from dvc.yaml's cmd."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.shell import stage_args
from dcgan.pipeline.store import check_tracking_store

PATHS = {
    "--data": "prepared data folder",
    "--generator": "generator .keras to write",
    "--discriminator": "discriminator .keras to write",
    "--training": "JSON record of what made the models",
    "--samples": "folder for the fixed-noise grids",
    "--losses": "loss plot PNG",
    "--history": "history CSV (DVC plots)",
    "--metrics": "final losses and lowest FCD JSON (DVC metrics)",
    "--quality": "quality scores during training JSON (DVC plots)",
    "--classifier": "the classifier stage's .keras (train.eval_interval)",
    "--checkpoints": "checkpoint folder; a crashed run resumes from it",
}
LOCK = {"--lock": "uv.lock that installed the environment (recorded)"}


def main() -> None:
    # a bad param stops here, before TensorFlow loads
    args, cfg = stage_args(__doc__, PATHS, stage="train", optional=LOCK)
    store_uri = check_tracking_store()  # and on an unreachable or read-only MLflow store

    from dcgan.pipeline import train  # imports TensorFlow; seeds everything from cfg.seed

    outputs = train.TrainOutputs(
        generator=args.generator,
        discriminator=args.discriminator,
        training=args.training,
        samples=args.samples,
        losses=args.losses,
        history=args.history,
        metrics=args.metrics,
        quality=args.quality,
    )
    with params_file(args.params):
        train.run(
            cfg,
            args.data,
            outputs,
            checkpoint_dir=args.checkpoints,
            lock=args.lock,
            store_uri=store_uri,
            params_file=args.params,
            classifier=args.classifier,
        )


if __name__ == "__main__":
    sys.exit(run_main(main))
