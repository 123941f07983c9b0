"""The site stage: a static page that runs the exported generator in the browser.

The page (``web/``: HTML, one script, one stylesheet) loads onnxruntime-web's WebAssembly
build, the ONNX generator and a card of what produced it, all from its own folder: it works
from ``python -m http.server`` and from any static host, and makes no request elsewhere.
onnxruntime-web comes from npm, pinned by ``web/package-lock.json`` (``npm ci``); only the
three files of its ``dist/`` that the single-threaded WebAssembly backend loads are copied.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from dcgan.config import FLOAT32, NoParams
from dcgan.contract import FCD, GENERATOR_SHA256, INPUT_NAME, OUTPUT_NAME
from dcgan.errors import DcganError
from dcgan.files import atomic_dir, sha256_file, write_json
from dcgan.pipeline.paths import SitePaths
from dcgan.tracking.store import repo_root

log = logging.getLogger(__name__)

ORT_PACKAGE = "onnxruntime-web"
# ort.wasm.min.js is the WebAssembly-only bundle; it imports the .mjs loader, which fetches
# the .wasm. Threads would need cross-origin isolation headers that static hosts rarely set.
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js", "style.css")
# Names inside the built site (the page fetches them relative to itself).
SITE_MODEL = "model.onnx"
SITE_CARD = "model.json"
SITE_ANIMATION = "training.gif"
CARD_METRICS = (
    FCD,
    "fcd_real_floor",
    "mnist_score",
    "mnist_score_real",
    "min_class_share",
    "max_class_share",
)
CARD_PARAMS = (
    "prepare.source",
    "train.iterations",
    "train.batch_size",
    "train.seed",
    "train.g_learning_rate",
    "train.d_learning_rate",
    "train.beta_1",
    "train.d_fakes",
    "train.label_smoothing",
    "export.opset",
)


def run(cfg: NoParams, paths: SitePaths) -> Path:
    """Build the site in ``paths.out`` (replaced whole, or left as it was if anything fails)."""
    web, onnx_path, out, animation = paths.web, paths.onnx, paths.out, paths.animation
    modules = node_modules(web)
    version = installed_ort(web, modules)
    card = model_card(onnx_path, paths.metrics)
    card["runtime"] = {ORT_PACKAGE: version, "backend": "wasm", "threads": 1}
    card["animation"] = SITE_ANIMATION if animation is not None else None
    with atomic_dir(out) as tmp:
        for name in PAGE_FILES:
            _copy(web / name, tmp / name, "restore it from git")
        dist = modules / ORT_PACKAGE / "dist"
        for name in ORT_FILES:
            _copy(dist / name, tmp / name, f"run `npm ci --prefix {web}`")
        shutil.copyfile(onnx_path, tmp / SITE_MODEL)
        if animation is not None:
            _copy(animation, tmp / SITE_ANIMATION, "run `dvc repro animate`")
        write_json(tmp / SITE_CARD, card)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    log.info(
        "built %s (%.1f MB; %s %s); serve it with: python -m http.server -d %s",
        out,
        size,
        ORT_PACKAGE,
        version,
        out,
    )
    return out


def node_modules(web: Path) -> Path:
    """``web/node_modules``; in a queued experiment's copy of the repository, which holds no
    git-ignored file, the main repository's (as its .venv and MLflow store are)."""
    local = web / "node_modules"
    if local.is_dir() or web.is_absolute():
        return local
    main = repo_root() / web / "node_modules"
    return main if main.is_dir() else local


def installed_ort(web: Path, modules: Path) -> str:
    """The onnxruntime-web version in ``modules``, checked against ``web``'s lock's pin."""
    fix = f"run `npm ci --prefix {web}` (Node 18 or newer; ./run does it)"
    try:
        lock = json.loads((web / "package-lock.json").read_text())
        pinned = lock["packages"][f"node_modules/{ORT_PACKAGE}"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DcganError(
            f"{web / 'package-lock.json'} does not pin {ORT_PACKAGE}; restore it from git"
        ) from None
    try:
        installed = json.loads((modules / ORT_PACKAGE / "package.json").read_text())
    except (OSError, ValueError):
        raise DcganError(f"{ORT_PACKAGE} {pinned} is not installed in {web}; {fix}") from None
    if installed.get("version") != pinned:
        raise DcganError(
            f"{web}/node_modules has {ORT_PACKAGE} {installed.get('version')} but "
            f"package-lock.json pins {pinned}; {fix}"
        )
    return pinned


def model_card(onnx_path: Path, metrics_path: Path) -> dict[str, Any]:
    """What the page shows and needs: the generator's signature, what trained it (the ONNX
    metadata the export stage wrote) and how good it is (the evaluate stage's metrics)."""
    import onnx

    if not onnx_path.is_file():
        raise DcganError(f"{onnx_path} not found; run `dvc repro export`")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
        meta = {p.key: p.value for p in model.metadata_props}
        params = json.loads(meta["params"])
        (z,) = model.graph.input
        z_dim = z.type.tensor_type.shape.dim[1].dim_value
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for a bad file
        raise DcganError(
            f"{onnx_path} is not a generator exported by this project ({type(exc).__name__}: "
            f"{str(exc)[:120]}); run `dvc repro export`"
        ) from None
    if z.name != INPUT_NAME or z_dim <= 0:
        raise DcganError(
            f"{onnx_path} takes {z.name!r} of width {z_dim}, not the generator's "
            f"{INPUT_NAME!r}; run `dvc repro export`"
        )
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as exc:
        raise DcganError(
            f"{metrics_path} cannot be read ({exc}); run `dvc repro evaluate`"
        ) from None
    return {
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "z_dim": z_dim,
        "model": SITE_MODEL,
        "params": {k: params[k] for k in CARD_PARAMS if k in params},
        "precision": meta.get("trained_precision", FLOAT32),
        "generator_sha256": meta.get(GENERATOR_SHA256, ""),
        "onnx_sha256": sha256_file(onnx_path),
        "metrics": {k: metrics[k] for k in CARD_METRICS if k in metrics},
    }


def _copy(src: Path, dest: Path, fix: str) -> None:
    try:
        shutil.copyfile(src, dest)
    except FileNotFoundError:
        raise DcganError(f"{src} is missing; {fix}") from None
