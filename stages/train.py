"""train: the book's DCGAN on the prepared data, logged to MLflow; the work is in
dcgan.pipeline.train."""

import argparse
import sys

from dcgan.config import load_config
from dcgan.errors import run_main
from dcgan.pipeline.tracking import check_tracking_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (block train:)")
    parser.add_argument("--data", default="data/prepared", help="prepared data folder")
    parser.add_argument("--models", default="models", help="where the .keras models go")
    parser.add_argument("--reports", default="reports", help="where history, grids and plots go")
    parser.add_argument(
        "--checkpoints",
        default="checkpoints/train",
        help="checkpoint folder; an unfinished run with the same params resumes",
    )
    parser.add_argument("--lock", help="uv.lock that installed the environment (recorded)")
    args = parser.parse_args()
    cfg = load_config("train", args.params)  # fails on bad params before TensorFlow loads
    check_tracking_store()  # and on an unreachable or read-only MLflow store

    from dcgan.pipeline import train  # imports TensorFlow; seeds everything from cfg.seed

    train.run(
        cfg,
        args.data,
        args.models,
        args.reports,
        checkpoint_dir=args.checkpoints,
        lock=args.lock,
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
