"""export: generator.keras -> generator.onnx with tf2onnx. The work is in dcgan.pipeline.export;
every path comes from dvc.yaml's cmd."""

import sys

from dcgan.errors import run_main
from dcgan.files import read_json
from dcgan.pipeline.shell import stage_args

PATHS = {
    "--generator": "trained generator .keras",
    "--training": "the train stage's JSON record",
    "--out": "ONNX file to write",
}
LOCK = {"--lock": "uv.lock that installed the environment (recorded)"}


def main() -> None:
    args, cfg = stage_args(__doc__, PATHS, stage="export", optional=LOCK)
    read_json(args.training, "train")  # a missing or broken record fails before TensorFlow loads

    from dcgan.pipeline import export

    export.run(cfg, args.generator, args.training, args.out, lock=args.lock)


if __name__ == "__main__":
    sys.exit(run_main(main))
