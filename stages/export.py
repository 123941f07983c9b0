"""export: generator.keras -> generator.onnx with tf2onnx. The work is in dcgan.pipeline.export;
every path comes from dvc.yaml's cmd."""

import argparse
import sys

from dcgan.config import load_config
from dcgan.errors import run_main
from dcgan.files import read_json, remove_leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--params", required=True, help="params file (block export:)")
    add("--generator", required=True, help="trained generator .keras")
    add("--training", required=True, help="the train stage's JSON record")
    add("--out", required=True, help="ONNX file to write")
    add("--lock", help="uv.lock that installed the environment (recorded)")
    args = parser.parse_args()
    remove_leftovers(*vars(args).values())  # of a run killed mid-write
    cfg = load_config("export", args.params)
    read_json(args.training, "train")  # a missing or broken record fails before TensorFlow loads

    from dcgan.pipeline import export

    export.run(cfg, args.generator, args.training, args.out, lock=args.lock)


if __name__ == "__main__":
    sys.exit(run_main(main))
