"""export: generator.keras -> generator.onnx with tf2onnx. The work is in dcgan.pipeline.export;
every path comes from dvc.yaml's cmd."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.files import read_json
from dcgan.pipeline.paths import ExportPaths
from dcgan.pipeline.shell import stage_args


def main() -> None:
    cfg, paths, params = stage_args(__doc__, "export", ExportPaths)
    read_json(paths.training, "train")  # a missing or broken record fails before TensorFlow

    from dcgan.pipeline import export

    with params_file(params):
        export.run(cfg, paths)


if __name__ == "__main__":
    sys.exit(run_main(main))
