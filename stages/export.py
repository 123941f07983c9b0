"""export: generator.keras -> generator.onnx with tf2onnx. The work is in dcgan.pipeline.export."""

import argparse
import sys

from dcgan.config import load_config
from dcgan.errors import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (block export:)")
    parser.add_argument("--models", default="models", help="folder with generator.keras")
    parser.add_argument("--out", default="models/generator.onnx", help="ONNX file to write")
    parser.add_argument("--lock", help="uv.lock that installed the environment (recorded)")
    args = parser.parse_args()
    cfg = load_config("export", args.params)

    from dcgan.pipeline import export

    export.run(cfg, args.models, args.out, lock=args.lock)


if __name__ == "__main__":
    sys.exit(run_main(main))
