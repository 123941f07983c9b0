"""animate: the progress grids of every sample interval -> one animated GIF. The work is in
dcgan.pipeline.animate; every path comes from dvc.yaml's cmd."""

import sys

from dcgan.errors import run_main
from dcgan.pipeline.shell import stage_args

PATHS = {
    "--samples": "folder of iter_NNNNNN.png grids (the train stage's)",
    "--generator": "trained generator .keras (finds its MLflow run)",
    "--training": "the train stage's JSON record",
    "--out": "GIF to write",
}


def main() -> None:
    args, _ = stage_args(__doc__, PATHS, outputs=["--out"])
    from dcgan.pipeline import animate

    animate.run(args.samples, args.generator, args.training, args.out)


if __name__ == "__main__":
    sys.exit(run_main(main))
