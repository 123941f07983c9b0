"""What the evaluate stage computes: the Keras generator's images for the ONNX parity check,
and sample quality measured with the MNIST classifier against real held-out images (the
formulas are in dcgan.quality.scores; the stage is dcgan.pipeline.evaluate)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow as tf

from dcgan.config import params_error
from dcgan.contract import FCD
from dcgan.gan.models import as_float32
from dcgan.quality import scores
from dcgan.quality.classifier import feature_head, feature_width

log = logging.getLogger(__name__)


def keras_generate(generator, z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The Keras generator in inference mode, compiled, batch by batch, in float32 (the maths
    the ONNX file holds, also for a model trained in mixed_bfloat16)."""
    generator = as_float32(generator)
    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return np.concatenate(
        [call(tf.constant(z[i : i + batch_size])).numpy() for i in range(0, len(z), batch_size)]
    )


def parity(onnx_images: np.ndarray, keras_images: np.ndarray, tolerance: float) -> dict:
    """Max and mean |ONNX - Keras| over the same noise, and whether the max is within
    ``tolerance``."""
    diff = np.abs(onnx_images.astype(np.float64) - keras_images.astype(np.float64))
    return {
        "onnx_max_abs_diff": float(diff.max()),
        "onnx_mean_abs_diff": float(diff.mean()),
        "onnx_within_tolerance": bool(diff.max() <= tolerance),
    }


def check_sample_count(key: str, n: int, classifier) -> None:
    """The FCD fits a covariance of the classifier's features: refuse too few samples for it,
    naming the params key that set them."""
    width = feature_width(classifier)
    if n <= width:
        raise params_error(
            f"{key}={n} is too few for the FCD, which fits a covariance of the classifier's "
            f"{width} features; use at least {width + 1}"
        )


def sample_scores(
    probs: np.ndarray, features: np.ndarray, reference_features: np.ndarray
) -> dict[str, Any]:
    """One image set's scores from its classifier outputs: the FCD against the reference's
    features, the MNIST score, class coverage and confidence. The evaluate stage and the
    in-training probe (dcgan.quality.probe) both score with it."""
    coverage = scores.class_coverage(probs)
    return {
        FCD: scores.frechet_distance(features, reference_features),
        "mnist_score": scores.mnist_score(probs),
        "min_class_share": coverage["min_class_share"],
        "max_class_share": coverage["max_class_share"],
        "class_kl_from_uniform": coverage["class_kl_from_uniform"],
        "confidence": scores.confidence(probs),
        "class_shares": coverage["class_shares"],
    }


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
    gen = sample_scores(gen_probs, gen_feats, test_feats)
    real = sample_scores(test_probs, test_feats, train_feats)
    metrics = {
        FCD: gen[FCD],
        "fcd_real_floor": scores.frechet_distance(train_feats, test_feats),
        "mnist_score": gen["mnist_score"],
        "mnist_score_real": real["mnist_score"],
        "min_class_share": gen["min_class_share"],
        "max_class_share": gen["max_class_share"],
        "class_kl_from_uniform": gen["class_kl_from_uniform"],
        "class_kl_from_uniform_real": real["class_kl_from_uniform"],
        "confidence": gen["confidence"],
        "confidence_real": real["confidence"],
        **scores.memorisation_ratio(generated, real_test, real_train),
        "class_shares": gen["class_shares"],
    }
    return metrics, gen_probs
