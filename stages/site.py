"""site: the static page that runs the exported generator in the browser (web/ + onnxruntime-web
+ the model + its card). The work is in dcgan.pipeline.site; every path comes from dvc.yaml."""

import argparse
import sys

from dcgan.errors import run_main
from dcgan.files import remove_leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add = parser.add_argument
    add("--web", required=True, help="the page's source folder (with node_modules from npm ci)")
    add("--onnx", required=True, help="the exported generator")
    add("--metrics", required=True, help="the evaluate stage's metrics JSON")
    add("--animation", help="the training animation (GIF) to show on the page")
    add("--out", required=True, help="folder to build the site in (replaced whole)")
    args = parser.parse_args()
    remove_leftovers(args.out)  # a half-built site of a run killed mid-build

    from dcgan.pipeline import site

    site.run(args.web, args.onnx, args.metrics, args.animation, args.out)


if __name__ == "__main__":
    sys.exit(run_main(main))
