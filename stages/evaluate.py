"""evaluate: ONNX vs Keras parity and sample quality. The work is in dcgan.pipeline.evaluate;
every path comes from dvc.yaml's cmd."""

import argparse
import sys

from dcgan.config import load_config, params_file
from dcgan.errors import run_main
from dcgan.files import remove_leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--params", required=True, help="params file (block evaluate:)")
    add("--onnx", required=True, help="exported generator")
    add("--generator", required=True, help="the Keras generator it was exported from")
    add("--classifier", required=True, help="the MNIST classifier that scores samples")
    add("--data", required=True, help="prepared real images")
    add("--metrics", required=True, help="metrics JSON to write (DVC metrics)")
    add("--class-shares", required=True, help="JSON of each predicted digit's share")
    add("--grid", required=True, help="PNG of the first 64 samples")
    add("--by-class", required=True, help="PNG of samples by predicted digit")
    args = parser.parse_args()
    remove_leftovers(*vars(args).values())  # of a run killed mid-write
    cfg = load_config("evaluate", args.params)

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
