"""animate: the progress grids of every sample interval -> one animated GIF. The work is in
dcgan.pipeline.animate; every path comes from dvc.yaml's cmd."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.paths import AnimatePaths
from dcgan.pipeline.shell import stage_args


def main() -> None:
    cfg, paths, params = stage_args(__doc__, "animate", AnimatePaths)
    from dcgan.pipeline import animate

    with params_file(params):
        animate.run(cfg, paths)


if __name__ == "__main__":
    sys.exit(run_main(main))
