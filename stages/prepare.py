"""prepare: MNIST -> normalised .npy splits. Kept short on purpose; the work is in
dcgan.pipeline.prepare."""

import argparse
import sys

from dcgan.config import load_config, params_file
from dcgan.errors import run_main
from dcgan.files import remove_leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True, help="params file (block prepare:)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args()
    remove_leftovers(*vars(args).values())  # of a run killed mid-write
    cfg = load_config("prepare", args.params)  # fails on bad params before any work

    from dcgan.pipeline import prepare

    with params_file(args.params):
        prepare.run(cfg, args.out)


if __name__ == "__main__":
    sys.exit(run_main(main))
