"""site: the static page that runs the exported generator in the browser (web/ + onnxruntime-web
+ the model + its card). The work is in dcgan.pipeline.site; every path comes from dvc.yaml."""

import sys

from dcgan.errors import run_main
from dcgan.pipeline.shell import stage_args

PATHS = {
    "--web": "the page's source folder (with node_modules from npm ci)",
    "--onnx": "the exported generator",
    "--metrics": "the evaluate stage's metrics JSON",
    "--out": "folder to build the site in (replaced whole)",
}
ANIMATION = {"--animation": "the training animation (GIF) to show on the page"}


def main() -> None:
    # Only the site's own leftovers: a half-built site of a run killed mid-build.
    args, _ = stage_args(__doc__, PATHS, optional=ANIMATION, outputs=["--out"])
    from dcgan.pipeline import site

    site.run(args.web, args.onnx, args.metrics, args.animation, args.out)


if __name__ == "__main__":
    sys.exit(run_main(main))
