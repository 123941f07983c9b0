"""classifier: the MNIST CNN that measures sample quality; the work is in
dcgan.pipeline.classifier."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.paths import ClassifierPaths
from dcgan.pipeline.shell import stage_args


def main() -> None:
    cfg, paths, params = stage_args(__doc__, "classifier", ClassifierPaths)
    from dcgan.pipeline import classifier

    with params_file(params):
        classifier.run(cfg, paths)


if __name__ == "__main__":
    sys.exit(run_main(main))
