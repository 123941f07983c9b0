"""classifier: the MNIST CNN that measures sample quality; the work is in
dcgan.pipeline.classifier."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.shell import stage_args

PATHS = {
    "--data": "prepared data folder",
    "--model": "model to write",
    "--report": "accuracy report",
}


def main() -> None:
    args, cfg = stage_args(__doc__, PATHS, stage="classifier")
    from dcgan.pipeline import classifier

    with params_file(args.params):
        classifier.run(cfg, args.data, args.model, args.report)


if __name__ == "__main__":
    sys.exit(run_main(main))
