"""animate: the progress grids of every sample interval -> one animated GIF. The work is in
dcgan.pipeline.animate; every path comes from dvc.yaml's cmd."""

import argparse
import sys

from dcgan.errors import run_main
from dcgan.files import remove_leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--samples", required=True, help="folder of iter_NNNNNN.png grids (the train stage's)")
    add("--generator", required=True, help="trained generator .keras (finds its MLflow run)")
    add("--training", required=True, help="the train stage's JSON record")
    add("--out", required=True, help="GIF to write")
    args = parser.parse_args()
    remove_leftovers(args.out)  # of a run killed mid-write

    from dcgan.pipeline import animate

    animate.run(args.samples, args.generator, args.training, args.out)


if __name__ == "__main__":
    sys.exit(run_main(main))
