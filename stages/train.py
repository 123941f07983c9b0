"""train: the book's DCGAN on the prepared data, logged to MLflow; the work is in
dcgan.pipeline.train. Every path comes from dvc.yaml's cmd."""

import argparse
import sys

from dcgan.config import load_config, params_file
from dcgan.errors import run_main
from dcgan.files import remove_leftovers
from dcgan.pipeline.store import check_tracking_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--params", required=True, help="params file (block train:)")
    add("--data", required=True, help="prepared data folder")
    add("--generator", required=True, help="generator .keras to write")
    add("--discriminator", required=True, help="discriminator .keras to write")
    add("--training", required=True, help="JSON record of what made the models")
    add("--samples", required=True, help="folder for the fixed-noise grids")
    add("--losses", required=True, help="loss plot PNG")
    add("--history", required=True, help="history CSV (DVC plots)")
    add("--metrics", required=True, help="final losses and lowest FCD JSON (DVC metrics)")
    add("--quality", required=True, help="quality scores during training JSON (DVC plots)")
    add("--classifier", required=True, help="the classifier stage's .keras (train.eval_interval)")
    add("--checkpoints", required=True, help="checkpoint folder; a crashed run resumes from it")
    add("--lock", help="uv.lock that installed the environment (recorded)")
    args = parser.parse_args()
    remove_leftovers(*vars(args).values())  # of a run killed mid-write
    cfg = load_config("train", args.params)  # fails on bad params before TensorFlow loads
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
