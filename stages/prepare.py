"""prepare: MNIST -> normalised .npy splits. Kept short on purpose; the work is in
dcgan.pipeline.prepare."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.shell import stage_args


def main() -> None:
    args, cfg = stage_args(__doc__, {"--out": "output folder"}, stage="prepare")
    from dcgan.pipeline import prepare

    with params_file(args.params):
        prepare.run(cfg, args.out)


if __name__ == "__main__":
    sys.exit(run_main(main))
