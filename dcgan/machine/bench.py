"""``dcgan bench``: training and inference speed, side by side in one process.

This machine may be shared and noisy, so every figure is a median over repeats and the
headline numbers are ratios of things measured in the same run. The report records the
machine (CPU model, cores, library versions) next to the figures.

Over 300 lines on purpose: the benchmark is one report, and its parts (the book's loop as
a baseline, our step in two precisions, the FLOP count, onnxruntime against TensorFlow) are
timed side by side so their ratios hold; apart they would be read as separate runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dcgan.config import BFLOAT16, FLOAT32, ExportConfig, TrainConfig
from dcgan.errors import DcganError
from dcgan.machine import determinism_cost
from dcgan.machine.timing import alternating_medians, median_seconds

log = logging.getLogger(__name__)
# The averaged generator's decay in the bench: the update's cost does not depend on it.
EMA_DECAY = 0.999


def machine() -> dict[str, Any]:
    import onnxruntime
    import tensorflow as tf

    from dcgan.machine.timing import cpu_name, onednn_isa

    return {
        "cpu": cpu_name(),
        "onednn_isa": onednn_isa(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
    }


def book_loop(cfg, images: np.ndarray, unused_predict: bool = True):
    """The book's loop on the same architecture: predict + train_on_batch, with D frozen in
    the combined model only. Keras 3 bakes the trainable variables into each model's train
    function when it is first traced, so D is traced trainable and the combined model frozen.
    As printed in the book, data, labels and noise are float64 NumPy arrays and the G phase
    calls ``generator.predict(z)`` once more without using the result (``unused_predict``).
    Returns a callable running one iteration, and the models (to check what trains)."""
    import keras

    from dcgan.gan.models import build_discriminator, build_generator

    g, d = build_generator(cfg.z_dim, cfg.leaky_slope), build_discriminator(cfg.leaky_slope)
    d.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(), metrics=["accuracy"])
    x_train = images.astype(np.float64)  # the book's X_train / 127.5 - 1.0
    real = np.ones((cfg.batch_size, 1))
    fake = np.zeros((cfg.batch_size, 1))
    rng = np.random.default_rng(cfg.seed)
    d.train_on_batch(x_train[: cfg.batch_size], real)  # trace D's train function, D trainable
    d.trainable = False
    combined = keras.Sequential([g, d])
    combined.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam())

    def iteration() -> None:
        idx = rng.integers(0, len(x_train), cfg.batch_size)
        z = rng.normal(0, 1, (cfg.batch_size, cfg.z_dim))
        gen = g.predict(z, verbose=0)
        with warnings.catch_warnings():
            # Keras warns that the frozen D has nothing to train, but D's train function was
            # traced trainable and still updates it (bench_training reports that it does).
            warnings.filterwarnings("ignore", "The model does not have any trainable weights")
            d.train_on_batch(x_train[idx], real)
            d.train_on_batch(gen, fake)
        z = rng.normal(0, 1, (cfg.batch_size, cfg.z_dim))
        if unused_predict:
            g.predict(z, verbose=0)
        combined.train_on_batch(z, real)

    return iteration, g, d, combined


def matmul_gflop_per_s(dtype: str = "float32", n: int = 2048, repeats: int = 10) -> float:
    """What this machine's kernels reach on a large square matmul: the ceiling for a step
    whose time is spent in convolutions (which TensorFlow lowers to the same GEMM kernels)."""
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(0, 0), dtype=dtype)
    product = tf.function(lambda a: tf.reduce_sum(tf.cast(tf.matmul(a, a), tf.float32)))
    return 2 * n**3 / median_seconds(lambda: product(a).numpy(), repeats) / 1e9


def step_flops(gan) -> float:
    """Floating-point operations of one compiled training iteration, counted by TensorFlow's
    profiler on the traced graph (convolutions, matmuls and their gradients dominate)."""
    import tensorflow as tf

    graph = gan.step_graph()
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    # The v1 profiler is the only FLOP counter TensorFlow ships; the deprecation warning it
    # logs (a TF1 API inside it) is nothing a user of `dcgan bench` can act on.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        return float(tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops)
    finally:
        tf_logger.setLevel(level)


def bench_training(train: TrainConfig, iterations: int = 30) -> dict[str, Any]:
    """Our step in float32 and mixed_bfloat16 against the book's loop, on ``train``'s model
    and batch (params.yaml's train block), on one device."""
    import keras

    from dcgan.data import normalise
    from dcgan.gan.training import GAN
    from dcgan.sources import load_sample

    cfg = dataclasses.replace(train, precision=FLOAT32, strategy="default", devices="")
    images = normalise(load_sample(0.2, 0).x_train)
    gan = GAN(cfg, images)
    ours = median_seconds(_step_of(gan), iterations, warmup=3)
    flops = step_flops(gan)
    gan_bf16 = GAN(dataclasses.replace(cfg, precision=BFLOAT16), images)
    ours_bf16 = median_seconds(_step_of(gan_bf16), iterations, warmup=3)

    iteration, g, d, _ = book_loop(cfg, images)
    # d.trainable_weights is empty once D is frozen; look at a kernel directly.
    kernel = d.get_layer("conv1").kernel
    before = kernel.numpy().copy()
    book = median_seconds(iteration, max(iterations // 2, 5), warmup=2)
    d_trains = not np.array_equal(before, kernel.numpy())
    lean_iteration, *_ = book_loop(cfg, images, unused_predict=False)
    book_lean = median_seconds(lean_iteration, max(iterations // 2, 5), warmup=2)
    keras.backend.clear_session()
    peak, peak_bf16 = matmul_gflop_per_s("float32"), matmul_gflop_per_s("bfloat16")
    settings = determinism_cost.step_under_variants(lambda: _step_of(GAN(cfg, images)), iterations)
    ema = ema_cost(cfg, images, iterations)
    return {
        "batch_size": cfg.batch_size,
        "ours_s_per_iteration": ours,
        "book_s_per_iteration": book,
        "speedup_vs_book": book / ours,
        "book_without_unused_predict_s_per_iteration": book_lean,
        "speedup_vs_book_without_unused_predict": book_lean / ours,
        "ours_mixed_bfloat16_s_per_iteration": ours_bf16,
        "mixed_bfloat16_speedup_vs_book": book / ours_bf16,
        "ours_images_per_s": 2 * cfg.batch_size / ours,  # real + fake images D sees per iteration
        "book_loop_trains_d": d_trains,
        "gflop_per_iteration": flops / 1e9,
        "ours_gflop_per_s": flops / 1e9 / ours,
        "matmul_float32_gflop_per_s": peak,
        "matmul_bfloat16_gflop_per_s": peak_bf16,
        "ours_mixed_bfloat16_gflop_per_s": flops / 1e9 / ours_bf16,
        "bfloat16_speedup_vs_float32": ours / ours_bf16,
        # what train.precision: auto picks from the same two figures (a tie keeps float32)
        "auto_precision": BFLOAT16 if ours_bf16 < ours else FLOAT32,
        # the step's FLOPs at matmul speed: no float32 step on this machine can beat this
        "float32_ceiling_speedup_vs_book": book / (flops / 1e9 / peak),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trace_count": gan.trace_count,
        # what the float32 step ran with, and what each bit-determinism setting costs it
        "determinism": settings,
        **ema,
    }


def ema_cost(cfg: TrainConfig, images: np.ndarray, iterations: int) -> dict[str, float]:
    """The float32 step with and without the averaged generator (train.ema_decay), in
    alternation: the ratio is what the update after each G step costs."""
    from dcgan.gan.training import GAN

    averaged = dataclasses.replace(cfg, ema_decay=EMA_DECAY)
    medians = alternating_medians(
        {"plain": _step_of(GAN(cfg, images)), "ema": _step_of(GAN(averaged, images))},
        iterations,
        warmup=3,
    )
    return {
        "ema_plain_s_per_iteration": medians["plain"],
        "ema_s_per_iteration": medians["ema"],
        "ema_update_cost": medians["ema"] / medians["plain"] - 1,
    }


def _step_of(gan) -> Callable[[], float]:
    return lambda: float(gan.train_step()["g_loss"])


def bench_inference(
    onnx_path: Path | None,
    keras_path: Path | None,
    train: TrainConfig,
    export: ExportConfig,
    batches=(1, 64, 1024),
) -> dict[str, Any]:
    """The shipped ONNX file through onnxruntime, tf2onnx's unrewritten graph of the same
    generator (what export.optimize=false gives), and the Keras generator as a tf.function.
    Without an exported file, a fresh generator of ``train``'s shape is exported as
    ``export`` says; the noise width is always the generator's own."""
    import onnx
    import tensorflow as tf

    from dcgan.contract import INPUT_NAME, OUTPUT_NAME, draw_noise
    from dcgan.gan.models import build_generator, generator_z_dim
    from dcgan.saving import load_model
    from dcgan.shipping.export import generator_to_onnx
    from dcgan.shipping.sampling import load_session

    with tempfile.TemporaryDirectory() as tmp:
        if onnx_path is None or not Path(onnx_path).is_file():
            generator = build_generator(train.z_dim, train.leaky_slope)
            onnx_path = Path(tmp) / "fresh.onnx"
            onnx.save(generator_to_onnx(generator, export.opset), str(onnx_path))
        elif keras_path is None or not Path(keras_path).is_file():
            raise DcganError(
                f"{onnx_path} needs the Keras generator it was exported from; pass --keras"
            )
        else:
            generator = load_model(keras_path, "train")
        z_dim = generator_z_dim(generator)
        plain_path = Path(tmp) / "plain.onnx"
        plain_model = generator_to_onnx(generator, export.opset, optimize=False)
        onnx.save(plain_model, str(plain_path))
        session, plain = load_session(onnx_path), load_session(plain_path)
        graph = session.get_modelmeta().custom_metadata_map.get("graph", "tf2onnx")
        call = tf.function(lambda z: generator(z, training=False), reduce_retracing=True)
        rows = []
        for batch in batches:
            z = draw_noise(batch, z_dim, seed=batch)
            tz = tf.constant(z)
            repeats = 200 if batch == 1 else (50 if batch == 64 else 10)
            feed = {INPUT_NAME: z}
            ort_s = median_seconds(lambda f=feed: session.run([OUTPUT_NAME], f), repeats, warmup=5)
            plain_s = median_seconds(lambda f=feed: plain.run([OUTPUT_NAME], f), repeats, warmup=5)
            tf_s = median_seconds(lambda tz=tz: call(tz).numpy(), repeats, warmup=5)
            rows.append(
                {
                    "batch": batch,
                    "onnxruntime_ms": 1e3 * ort_s,
                    "onnxruntime_tf2onnx_graph_ms": 1e3 * plain_s,
                    "tensorflow_ms": 1e3 * tf_s,
                    "onnxruntime_images_per_s": batch / ort_s,
                    "tensorflow_images_per_s": batch / tf_s,
                    "ort_speedup_vs_tf": tf_s / ort_s,
                }
            )
    return {"model": str(onnx_path), "graph": graph, "z_dim": z_dim, "rows": rows}


def bench_sample_cli(onnx_path: Path | None) -> dict[str, Any] | None:
    """Cold start of `dcgan sample -n 64` in a fresh process, and whether TF got imported."""
    if onnx_path is None or not Path(onnx_path).is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import sys, time; t=time.perf_counter(); from dcgan.cli import main; "
            f"rc=main(['sample','--model',r'{onnx_path}','-n','64','--out',r'{tmp}/s.png']); "
            "print(time.perf_counter()-t, 'tensorflow' in sys.modules)"
        )
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout.split()
            walls.append(time.perf_counter() - start)
        return {"wall_s": statistics.median(walls), "tensorflow_imported": out[-1] == "True"}


def run(
    out: Path,
    onnx_path: Path | None,
    keras_path: Path | None,
    train: TrainConfig,
    export: ExportConfig,
    iterations: int,
) -> dict[str, Any]:
    """Every benchmark, the table printed and the report written to ``out``."""
    report = {"machine": machine()}
    log.info("benchmarking training (%d iterations each)...", iterations)
    report["training"] = bench_training(train, iterations)
    log.info("benchmarking inference...")
    report["inference"] = bench_inference(onnx_path, keras_path, train, export)
    report["sample_cli"] = bench_sample_cli(onnx_path)
    from dcgan.files import write_json

    write_json(out, report)
    print(format_table(report))
    return report


def format_table(report: dict[str, Any]) -> str:
    t = report["training"]
    lines = [
        f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"TF {report['machine']['tensorflow']}, ORT {report['machine']['onnxruntime']}",
        f"oneDNN ISA: {report['machine'].get('onednn_isa')}",
        "",
        "training (batch 128)          s/iteration   images/s",
        *(
            # images/s: the real + fake images D sees per iteration
            f"  {label:28s}{t[key]:10.3f}   {2 * t['batch_size'] / t[key]:8.0f}"
            for label, key in (
                ("dcgan step (tf.function)", "ours_s_per_iteration"),
                ("dcgan step, mixed_bfloat16", "ours_mixed_bfloat16_s_per_iteration"),
                ("book loop (train_on_batch)", "book_s_per_iteration"),
                ("... minus its unused predict", "book_without_unused_predict_s_per_iteration"),
            )
        ),
        f"  speed-up vs book: {t['speedup_vs_book']:.2f}x (float32), "
        f"{t['mixed_bfloat16_speedup_vs_book']:.2f}x (mixed_bfloat16); "
        f"{t['speedup_vs_book_without_unused_predict']:.2f}x vs the book minus its unused predict",
        f"  {t['gflop_per_iteration']:.2f} GFLOP/iteration"
        f" = {t['ours_gflop_per_s']:.1f} GFLOP/s; peak RSS {t['peak_rss_mb']:.0f} MB; "
        f"book loop trains D: {t['book_loop_trains_d']}",
        f"  2048^2 matmul: {t['matmul_float32_gflop_per_s']:.0f} GFLOP/s float32, "
        f"{t['matmul_bfloat16_gflop_per_s']:.0f} bfloat16; at float32 matmul speed the step "
        f"would be {t['float32_ceiling_speedup_vs_book']:.2f}x the book loop",
        f"  float32 step {t['ours_gflop_per_s']:.0f} GFLOP/s = "
        f"{100 * t['ours_gflop_per_s'] / t['matmul_float32_gflop_per_s']:.0f} % of its matmul; "
        f"bfloat16 step {t['ours_mixed_bfloat16_gflop_per_s']:.0f} GFLOP/s = "
        f"{100 * t['ours_mixed_bfloat16_gflop_per_s'] / t['matmul_bfloat16_gflop_per_s']:.0f} "
        f"% of its matmul; bfloat16/float32 {t['bfloat16_speedup_vs_float32']:.2f}x "
        f"(train.precision: auto -> {t['auto_precision']})",
        *determinism_cost.table_lines(t["determinism"]),
        f"  averaged generator (train.ema_decay): {100 * t['ema_update_cost']:+.1f} % per step "
        f"({t['ema_s_per_iteration']:.3f} s against {t['ema_plain_s_per_iteration']:.3f} s, "
        "timed in turn)",
        "",
        "inference      onnxruntime ms   (tf2onnx graph)   tensorflow ms   ORT/TF speed-up",
    ]
    for row in report["inference"]["rows"]:
        lines.append(
            f"  batch {row['batch']:5d} {row['onnxruntime_ms']:12.2f} "
            f"{row['onnxruntime_tf2onnx_graph_ms']:17.2f} "
            f"{row['tensorflow_ms']:15.2f} {row['ort_speedup_vs_tf']:14.2f}x"
        )
    if report.get("sample_cli"):
        s = report["sample_cli"]
        lines += [
            "",
            f"dcgan sample -n 64, cold start: {s['wall_s']:.2f} s wall "
            f"(TensorFlow imported: {s['tensorflow_imported']})",
        ]
    return "\n".join(lines)
