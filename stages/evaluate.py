"""evaluate: ONNX vs Keras parity and sample quality. The work is in dcgan.pipeline.evaluate;
every path comes from dvc.yaml's cmd."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.shell import stage_args

PATHS = {
    "--onnx": "exported generator",
    "--generator": "the Keras generator it was exported from",
    "--classifier": "the MNIST classifier that scores samples",
    "--data": "prepared real images",
    "--metrics": "metrics JSON to write (DVC metrics)",
    "--class-shares": "JSON of each predicted digit's share",
    "--grid": "PNG of the first 64 samples",
    "--by-class": "PNG of samples by predicted digit",
}


def main() -> None:
    args, cfg = stage_args(__doc__, PATHS, stage="evaluate")
    from dcgan.pipeline import evaluate

    outputs = evaluate.EvaluateOutputs(
        metrics=args.metrics,
        class_shares=args.class_shares,
        grid=args.grid,
        by_class=args.by_class,
    )
    with params_file(args.params):
        evaluate.run(cfg, args.onnx, args.generator, args.classifier, args.data, outputs)


if __name__ == "__main__":
    sys.exit(run_main(main))
