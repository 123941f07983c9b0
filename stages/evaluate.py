"""evaluate: ONNX vs Keras parity and sample quality. The work is in dcgan.pipeline.evaluate;
every path comes from dvc.yaml's cmd."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.paths import EvaluatePaths
from dcgan.pipeline.shell import stage_args


def main() -> None:
    cfg, paths, params = stage_args(__doc__, "evaluate", EvaluatePaths)
    from dcgan.pipeline import evaluate

    with params_file(params):
        evaluate.run(cfg, paths)


if __name__ == "__main__":
    sys.exit(run_main(main))
