"""site: the static page that runs the exported generator in the browser (web/ + onnxruntime-web
+ the model + its card). The work is in dcgan.pipeline.site; every path comes from dvc.yaml."""

import sys

from dcgan.config import params_file
from dcgan.errors import run_main
from dcgan.pipeline.paths import SitePaths
from dcgan.pipeline.shell import stage_args


def main() -> None:
    cfg, paths, params = stage_args(__doc__, "site", SitePaths)
    from dcgan.pipeline import site

    with params_file(params):
        site.run(cfg, paths)


if __name__ == "__main__":
    sys.exit(run_main(main))
