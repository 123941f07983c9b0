"""``scripts/gpu_check.sh``: what the GPU path does on a user's own NVIDIA GPU, in a JSON file.

The project has no GPU to measure on (docs/gpu.md). This is how a user measures on theirs
what we could not: seconds per iteration of the default config in each precision, with and
without XLA; whether two identical runs train the same bits; and whether the ONNX file
computes what Keras does on the GPU. Without a GPU it says so in one line, writes the JSON
with ``gpu_found: false`` and exits 1; ``--allow-cpu`` runs the same checks on the CPU (how
the project tests this module).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import dcgan
from dcgan.config import FLOAT32, PARAMS_FILE, load_all
from dcgan.errors import DcganError
from dcgan.files import write_json

ITERATIONS = 300  # a few hundred: the step time settles, and the check stays within minutes
PARITY_SAMPLES = 256
LOCK = Path(dcgan.__file__).resolve().parents[1] / "uv.lock"  # the repository's
NO_GPU = (
    "gpu_check: no GPU found (TensorFlow lists none); on Linux x86_64 with an NVIDIA driver, "
    "install the locked extra first: DCGAN_EXTRAS=gpu ./run shell"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu_check.sh",
        description="Time, repeat and export the default config's training on this GPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON report")
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE), help="params file")
    parser.add_argument(
        "--data", type=Path, default=Path("data/prepared"), help="the prepare stage's output"
    )
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="per recipe")
    parser.add_argument(
        "--recipes",
        default="",
        help="comma-separated, e.g. float32,mixed_float16+xla; "
        "default: every recipe train.precision: auto times on this device",
    )
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (a test)")
    args = parser.parse_args(argv)
    if args.iterations < 2:
        parser.error(f"--iterations {args.iterations}: at least 2 (the first one compiles)")
    return args


def train(cfg: Any, images: np.ndarray, recipe: str) -> tuple[dict[str, Any], Any]:
    """Train ``cfg.iterations`` iterations in ``recipe``: the figures and the GAN."""
    from dcgan.gan.training import GAN
    from dcgan.machine.precision import split

    precision, jit_compile = split(recipe)
    gan = GAN(dataclasses.replace(cfg, precision=precision), images, jit_compile=jit_compile)
    start = time.perf_counter()
    float(gan.train_step()["g_loss"])  # traces and compiles (XLA: the slow part)
    compiled = time.perf_counter()
    for _ in range(cfg.iterations - 2):
        gan.train_step()
    losses = {k: float(v) for k, v in gan.train_step().items()}  # float() waits for the GPU
    done = time.perf_counter()
    digest = hashlib.sha256()
    for weight in gan.generator.weights + gan.discriminator.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    figures = {
        "seconds_per_iteration": (done - compiled) / (cfg.iterations - 1),
        "first_iteration_seconds": compiled - start,
        "final_losses": losses,
        "finite": bool(all(np.isfinite(v) for v in losses.values())),
        "weights_sha256": digest.hexdigest(),
    }
    return figures, gan


def onnx_parity(generator: Any, export: Any, tolerance: float, seed: int) -> dict[str, Any]:
    """The generator as the export stage writes it, read back as the evaluate stage reads it
    (onnxruntime on the CPU), against Keras on this device over the same noise."""
    import tempfile

    import onnx

    from dcgan.contract import draw_noise
    from dcgan.quality.evaluation import keras_generate, parity
    from dcgan.shipping.export import generator_to_onnx
    from dcgan.shipping.sampling import generate, load_session

    model = generator_to_onnx(generator, export.opset, optimize=export.optimize)
    z = draw_noise(PARITY_SAMPLES, generator.input_shape[-1], seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parity.onnx"
        onnx.save(model, str(path))
        onnx_images = generate(load_session(path), z)
    return {**parity(onnx_images, keras_generate(generator, z), tolerance), "tolerance": tolerance}


def check(args: argparse.Namespace, device: dict[str, str]) -> dict[str, Any]:
    """Every recipe once; float32 and the fastest recipe again (same bits?); float32's
    generator through ONNX."""
    from dcgan.machine.devices import DEVICE
    from dcgan.machine.precision import candidates

    stages = load_all(args.params)
    cfg = dataclasses.replace(stages["train"], iterations=args.iterations, strategy="default")
    try:
        images = np.load(args.data / "x_train.npy")
    except OSError:
        raise DcganError(
            f"gpu_check: no {args.data / 'x_train.npy'}; run `dvc repro prepare` first"
        ) from None
    recipes = [r for r in args.recipes.split(",") if r] or list(candidates(device[DEVICE]))
    runs: dict[str, Any] = {}
    generator = None
    for recipe in recipes:
        try:
            runs[recipe], gan = train(cfg, images, recipe)
        except Exception as exc:  # noqa: BLE001 (e.g. no deterministic GPU kernel: say which)
            runs[recipe] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            continue
        if recipe == FLOAT32:
            generator = gan.generator
    timed = {r: f for r, f in runs.items() if "seconds_per_iteration" in f}
    fastest = min(timed, key=lambda r: timed[r]["seconds_per_iteration"]) if timed else None
    repeats = {}
    for recipe in dict.fromkeys(r for r in (FLOAT32, fastest) if r in timed):
        again, _ = train(cfg, images, recipe)
        repeats[recipe] = again["weights_sha256"] == timed[recipe]["weights_sha256"]
    export, evaluate = stages["export"], stages["evaluate"]
    parity = (
        onnx_parity(generator, export, evaluate.tolerance, evaluate.seed)
        if generator is not None
        else {"onnx_within_tolerance": False, "error": "float32 did not train"}
    )
    ok = (
        bool(timed)
        and all(f.get("finite") for f in runs.values())
        and all(repeats.values())
        and parity["onnx_within_tolerance"]
    )
    return {"runs": runs, "fastest": fastest, "bitwise_repeat": repeats, "onnx": parity, "ok": ok}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dcgan.machine import devices, environment

    device = devices.describe()
    report: dict[str, Any] = {
        "environment": {**environment.describe(LOCK if LOCK.exists() else None), **device},
        "iterations": args.iterations,
        "gpu_found": device[devices.DEVICE] != devices.CPU,
    }
    if not report["gpu_found"] and not args.allow_cpu:
        write_json(args.out, {**report, "ok": False})
        print(NO_GPU, file=sys.stderr)
        return 1
    try:
        report.update(check(args, device))
    except DcganError as exc:
        print(exc, file=sys.stderr)
        return 1
    write_json(args.out, report)
    for recipe, figures in report["runs"].items():
        shown = figures.get("error") or f"{figures['seconds_per_iteration']:.4f} s/iteration"
        print(f"{recipe:20s} {shown}")
    diff = report["onnx"].get("onnx_max_abs_diff", "n/a")
    same = report["bitwise_repeat"]
    print(f"same bits twice: {same}; ONNX max |diff| {diff}; ok: {report['ok']} ({args.out})")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
