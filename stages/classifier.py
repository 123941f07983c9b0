"""classifier: the MNIST CNN that measures sample quality; the work is in
dcgan.pipeline.classifier."""

import argparse
import sys

from dcgan.config import load_config, params_file
from dcgan.errors import run_main
from dcgan.files import remove_leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, help="params file (block classifier:)")
    parser.add_argument("--data", required=True, help="prepared data folder")
    parser.add_argument("--model", required=True, help="model to write")
    parser.add_argument("--report", required=True, help="accuracy report")
    args = parser.parse_args()
    remove_leftovers(*vars(args).values())  # of a run killed mid-write
    cfg = load_config("classifier", args.params)

    from dcgan.pipeline import classifier

    with params_file(args.params):
        classifier.run(cfg, args.data, args.model, args.report)


if __name__ == "__main__":
    sys.exit(run_main(main))
