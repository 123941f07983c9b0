"""prepare: MNIST -> normalised .npy splits. Kept short on purpose; the work is in
dcgan.pipeline.prepare."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.paths import PreparePaths
from dcgan.pipeline.shell import stage_args


def main() -> None:
    cfg, paths, params = stage_args(__doc__, "prepare", PreparePaths)
    from dcgan.pipeline import prepare

    with params_file(params):
        prepare.run(cfg, paths)


if __name__ == "__main__":
    sys.exit(run_main(main))
