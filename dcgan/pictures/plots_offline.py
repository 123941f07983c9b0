"""`dvc plots show` and `dvc plots diff` with no network: DVC's HTML template with Vega,
Vega-Lite and vega-embed inside it, from npm (pinned by web/package-lock.json, installed by
``npm ci --prefix web`` as the page's onnxruntime-web is).

DVC's own page loads the three from a CDN, so offline or behind a firewall its charts are
blank. ``./run`` writes the template to ``.dvc/plots.html`` and names it in the clone's
``.dvc/config.local`` (``plots.html_template``, which DVC reads relative to ``.dvc/``); both are
git-ignored, so a clone that never ran ``./run`` keeps DVC's default page::

    python -m dcgan.pictures.plots_offline          # in the repository's root

The scripts are inlined rather than linked, so the page opens wherever ``-o`` puts it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dcgan.errors import DcganError, run_main
from dcgan.files import atomic_path

# The three libraries DVC's Vega renderer (dvc_render.vega) loads, in its order.
LIBRARIES = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}
TEMPLATE = ".dvc/plots.html"
CONFIG_KEY = ("plots", "html_template")

# DVC's own page (dvc_render.html.PAGE_HTML) with the scripts inlined: {refresh_tag} and
# {plot_divs} are DVC's placeholders; without {scripts} DVC adds no CDN tags.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
%s
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page(node_modules: Path) -> str:
    """The template, with each library's installed build inlined (and its version named)."""
    scripts = []
    for name, build in LIBRARIES.items():
        package, script = node_modules / name / "package.json", node_modules / name / build
        if not script.is_file():
            raise DcganError(
                f"no {name} in {node_modules} (web/package-lock.json pins it); run "
                "`npm ci --prefix web` (./run does it)"
            )
        version = json.loads(package.read_text())["version"]
        # A "</script" inside the code would end the inline element early.
        code = script.read_text(encoding="utf-8").replace("</script", "<\\/script")
        scripts.append(f"    <script>/* {name} {version} */\n{code}\n    </script>")
    return PAGE % "\n".join(scripts)


def install(repo: Path) -> Path:
    """Write ``repo/.dvc/plots.html`` from ``repo/web/node_modules`` and point the clone's
    DVC config at it; returns the template's path."""
    from dvc.config import Config

    path = repo / TEMPLATE
    text = page(repo / "web" / "node_modules")
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    section, key = CONFIG_KEY
    config = Config(dvc_dir=str(repo / ".dvc"))
    if config["plots"].get(key) != path.name:
        with config.edit("local") as local:
            local.setdefault(section, {})[key] = path.name  # relative to .dvc/
    return path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    install(Path(argv[0] if argv else ".").resolve())


if __name__ == "__main__":
    sys.exit(run_main(main))
