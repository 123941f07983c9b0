"""The evaluate stage: ONNX (onnxruntime) against Keras on the same noise, and sample quality
measured with the MNIST classifier against real held-out images (see dcgan.quality)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from dcgan import quality
from dcgan.classifier import feature_head
from dcgan.config import EvaluateConfig, flat_params
from dcgan.data import load_prepared
from dcgan.errors import DcganError
from dcgan.files import sha256_file, write_json
from dcgan.models import as_float32, generator_z_dim, load_model
from dcgan.plots import save_by_class, save_grid
from dcgan.sampling import draw_noise, generate, load_session, z_dim_of
from dcgan.tracking import ONNX_TAG, Tracker

log = logging.getLogger(__name__)


def keras_generate(generator, z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The Keras generator in inference mode, compiled, batch by batch, in float32 (the maths
    the ONNX file holds, also for a model trained in mixed_bfloat16)."""
    generator = as_float32(generator)
    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return np.concatenate(
        [call(tf.constant(z[i : i + batch_size])).numpy() for i in range(0, len(z), batch_size)]
    )


def quality_metrics(
    classifier, generated: np.ndarray, real_test: np.ndarray, real_train: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """Every quality metric for ``generated``, each with its real-data reference.

    Returns (metrics, generated class probabilities).
    """
    head = feature_head(classifier)
    gen_probs, gen_feats = head(generated)
    test_probs, test_feats = head(real_test)
    _, train_feats = head(real_train)
    gen_cov, test_cov = quality.class_coverage(gen_probs), quality.class_coverage(test_probs)
    metrics = {
        "fcd": quality.frechet_distance(gen_feats, test_feats),
        "fcd_real_floor": quality.frechet_distance(train_feats, test_feats),
        "mnist_score": quality.mnist_score(gen_probs),
        "mnist_score_real": quality.mnist_score(test_probs),
        "min_class_share": gen_cov["min_class_share"],
        "max_class_share": gen_cov["max_class_share"],
        "class_kl_from_uniform": gen_cov["class_kl_from_uniform"],
        "class_kl_from_uniform_real": test_cov["class_kl_from_uniform"],
        "confidence": quality.confidence(gen_probs),
        "confidence_real": quality.confidence(test_probs),
        **quality.memorisation_ratio(generated, real_test, real_train),
        "class_shares": gen_cov["class_shares"],
    }
    return metrics, gen_probs


def evaluate(
    cfg: EvaluateConfig,
    onnx_path: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    reports_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Compare ONNX and Keras outputs and measure sample quality; write reports/metrics.json,
    a grid of ONNX samples and the samples arranged by predicted digit.

    Raises DcganError when max |onnx - keras| exceeds ``cfg.tolerance``.
    """
    onnx_path, models_dir, reports_dir = Path(onnx_path), Path(models_dir), Path(reports_dir)
    session = load_session(onnx_path)
    z_dim = z_dim_of(session)
    generator = load_model(models_dir / "generator.keras")
    if generator_z_dim(generator) != z_dim:
        raise DcganError(
            f"{models_dir / 'generator.keras'} takes z of width "
            f"{generator_z_dim(generator)} but {onnx_path} takes {z_dim}; "
            "re-export with `dvc repro -f export`"
        )
    classifier = load_model(models_dir / "mnist_classifier.keras")
    data = load_prepared(data_dir)

    z = draw_noise(cfg.num_samples, z_dim, cfg.seed)
    onnx_images = generate(session, z)  # (N, 28, 28, 1)
    keras_images = keras_generate(generator, z)
    diff = np.abs(onnx_images.astype(np.float64) - keras_images.astype(np.float64))
    metrics: dict[str, Any] = {
        "num_samples": int(cfg.num_samples),
        "onnx_max_abs_diff": float(diff.max()),
        "onnx_mean_abs_diff": float(diff.mean()),
        "onnx_within_tolerance": bool(diff.max() <= cfg.tolerance),
    }
    scores, probs = quality_metrics(classifier, onnx_images, data.x_test, data.x_train)
    shares = scores.pop("class_shares")
    metrics.update(scores)
    write_json(reports_dir / "metrics.json", metrics)
    write_json(reports_dir / "class_shares.json", {str(d): s for d, s in enumerate(shares)})
    grid = save_grid(onnx_images[:64], reports_dir / "onnx_samples.png", cols=8)
    by_class = save_by_class(onnx_images, probs, reports_dir / "samples_by_class.png")

    meta = session.get_modelmeta().custom_metadata_map
    experiment = json.loads(meta.get("params", "{}")).get("train.experiment")
    tracker = (
        Tracker.for_artifact(experiment, ONNX_TAG, sha256_file(onnx_path), what="ONNX file")
        if experiment
        else None
    )
    if tracker is not None:
        tracker.log_params(flat_params("evaluate", cfg))
        tracker.log_metrics({k: float(v) for k, v in metrics.items()})
        tracker.log_metrics({f"class_share_{d}": s for d, s in enumerate(shares)})
        tracker.log_artifact(grid)
        tracker.log_artifact(by_class)
    log.info("evaluate: %s", json.dumps(metrics))
    if not metrics["onnx_within_tolerance"]:
        raise DcganError(
            f"ONNX and Keras outputs differ by up to {metrics['onnx_max_abs_diff']:.3g}"
            f", above evaluate.tolerance={cfg.tolerance:g}; check the export "
            "(training=False trace, opset) or raise the tolerance"
        )
    return metrics
