"""Sample quality during training: every ``train.eval_interval`` iterations the train stage
scores G's images of one fixed noise set with the classifier stage's CNN, by the evaluate
stage's own functions (dcgan.evaluation), so a run's FCD can be watched as it trains.

The probe only reads the generator: G runs in inference mode (BatchNorm's moving statistics
are read, never updated), its noise comes from its own seeded NumPy generator (never the
training step's RNG), and nothing touches the optimizers, so the weights after N iterations
are the same bits with the probe on or off (tested). Everything that can be built once is:
the classifier's head and G's call are each traced once, and the real test digits' features,
the FCD's reference, are computed once per run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dcgan.classifier import feature_head
from dcgan.config import TrainConfig, params_error
from dcgan.contract import FCD, draw_noise
from dcgan.evaluation import check_sample_count, sample_scores
from dcgan.saving import load_model

# What the curve records at each interval; the evaluate stage's names, so a reader knows them.
SCORES = (FCD, "mnist_score", "min_class_share", "max_class_share")
BATCH = 500  # images per call of G and of the classifier: 2 000 samples in four


class QualityProbe:
    """``probe()`` -> the SCORES of ``generator``'s images of a fixed noise set.

    ``real_test``: the real held-out digits the FCD compares against (the evaluate stage
    uses the same split). ``seconds``: the time spent scoring so far, to weigh against the
    training's."""

    def __init__(
        self,
        cfg: TrainConfig,
        generator: keras.Model,
        classifier: keras.Model,
        real_test: np.ndarray,
    ) -> None:
        check_sample_count("train.eval_samples", cfg.eval_samples, classifier)
        self.z = draw_noise(cfg.eval_samples, cfg.z_dim, cfg.eval_seed)  # (N, z_dim)
        self.head = feature_head(classifier, batch_size=BATCH)
        _, self.reference = self.head(real_test)  # (N_test, 128): once per run
        # One trace for every call: the batch dimension is left open for a shorter last batch.
        self._generate = tf.function(
            lambda z: tf.cast(generator(z, training=False), tf.float32),
            input_signature=[tf.TensorSpec([None, cfg.z_dim], tf.float32)],
        )
        self.seconds = 0.0

    def images(self) -> np.ndarray:
        """G's images of the probe's noise, (N, 28, 28, 1) float32 in [-1, 1]."""
        return np.concatenate(
            [
                self._generate(tf.constant(self.z[i : i + BATCH])).numpy()
                for i in range(0, len(self.z), BATCH)
            ]
        )

    def __call__(self) -> dict[str, float]:
        start = time.perf_counter()
        images = self.images()
        if not np.isfinite(images).all():  # a diverged G: no score means anything
            return dict.fromkeys(SCORES, float("nan"))
        probs, features = self.head(images)
        scores: dict[str, Any] = sample_scores(probs, features, self.reference)
        self.seconds += time.perf_counter() - start
        return {k: float(scores[k]) for k in SCORES}


def for_training(
    cfg: TrainConfig,
    generator: keras.Model,
    classifier: str | os.PathLike[str] | None,
    real_test: np.ndarray,
) -> QualityProbe | None:
    """The train stage's probe of ``generator``, or None when ``train.eval_interval`` is 0.
    ``classifier`` is the classifier stage's .keras file; ``real_test`` the FCD's reference,
    the real held-out digits, as in the evaluate stage."""
    if not cfg.eval_interval:
        return None
    if classifier is None:
        raise params_error(
            f"train.eval_interval={cfg.eval_interval} scores samples with the classifier "
            "stage's model, and none was given; pass --classifier (dvc.yaml does), or set "
            "train.eval_interval: 0"
        )
    return QualityProbe(cfg, generator, load_model(classifier, "classifier"), real_test)
