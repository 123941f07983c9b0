"""evaluate: ONNX vs Keras parity and sample quality. The work is in dcgan.pipeline.evaluate."""

import argparse
import sys

from dcgan.config import load_config
from dcgan.errors import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (block evaluate:)")
    parser.add_argument("--onnx", default="models/generator.onnx", help="exported generator")
    parser.add_argument(
        "--models", default="models", help="folder with generator.keras and mnist_classifier.keras"
    )
    parser.add_argument("--data", default="data/prepared", help="prepared real images")
    parser.add_argument("--reports", default="reports", help="where metrics.json and grids go")
    args = parser.parse_args()
    cfg = load_config("evaluate", args.params)

    from dcgan.pipeline import evaluate

    evaluate.run(cfg, args.onnx, args.models, args.data, args.reports)


if __name__ == "__main__":
    sys.exit(run_main(main))
