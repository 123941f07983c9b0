"""train: the book's DCGAN on the prepared data, logged to MLflow; the work is in
dcgan.pipeline.train. Every path comes from dvc.yaml's cmd."""

import sys

from dcgan.config import params_file
from dcgan.data import require_prepared
from dcgan.errors import run_main
from dcgan.pipeline.paths import TrainPaths
from dcgan.pipeline.shell import stage_args
from dcgan.tracking.store import check_tracking_store


def main() -> None:
    # A bad param, missing data, and an unreachable or read-only MLflow store stop here,
    # before TensorFlow loads.
    cfg, paths, params = stage_args(__doc__, "train", TrainPaths)
    require_prepared(paths.data)
    store_uri = check_tracking_store()

    from dcgan.pipeline import train  # imports TensorFlow; seeds everything from cfg.seed

    with params_file(params):
        train.run(cfg, paths, store_uri=store_uri)


if __name__ == "__main__":
    sys.exit(run_main(main))
