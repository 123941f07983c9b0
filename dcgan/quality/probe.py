"""Sample quality during training: every ``train.eval_interval`` iterations the train stage
scores G's images of one fixed noise set with the classifier stage's CNN, by the evaluate
stage's own functions (dcgan.quality.evaluation), so a run's FCD can be watched as it trains.

The probe only reads the generator: G runs in inference mode (BatchNorm's moving statistics
are read, never updated), its noise comes from its own seeded NumPy stream (never the
training step's RNG, and never the evaluate stage's draw, whatever the two seeds: a
generator kept for its probe score is then measured on other samples by the evaluate stage),
and nothing touches the optimizers, so the weights after N iterations
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

from dcgan.config import TrainConfig, params_error
from dcgan.contract import FCD
from dcgan.gan.shipped import LIVE_PREFIX
from dcgan.quality.classifier import feature_head
from dcgan.quality.evaluation import check_sample_count, sample_scores
from dcgan.saving import load_model

# What the curve records at each interval; the evaluate stage's names, so a reader knows them.
SCORES = (FCD, "mnist_score", "min_class_share", "max_class_share")
BATCH = 500  # images per call of G and of the classifier: 2 000 samples in four
PROBE_STREAM = 1  # the probe's noise: NumPy's stream (seed, 1); draw_noise(seed) is (seed)


def probe_noise(n: int, z_dim: int, seed: int) -> np.ndarray:
    """The probe's z ~ N(0, 1), float32 (n, z_dim): a stream of its own, apart from
    dcgan.contract.draw_noise's for every pair of seeds."""
    rng = np.random.default_rng([seed, PROBE_STREAM])
    return rng.standard_normal((n, z_dim)).astype(np.float32)


class QualityProbe:
    """``probe()`` -> the SCORES of ``generator``'s images of a fixed noise set, and with a
    ``live`` generator (G itself when ``generator`` is its average) the same scores of it,
    named ``live_fcd`` and so on.

    ``real_test``: the real held-out digits the FCD compares against (the evaluate stage
    uses the same split). ``seconds``: the time spent scoring so far, to weigh against the
    training's."""

    def __init__(
        self,
        cfg: TrainConfig,
        generator: keras.Model,
        classifier: keras.Model,
        real_test: np.ndarray,
        live: keras.Model | None = None,
    ) -> None:
        check_sample_count("train.eval_samples", cfg.eval_samples, classifier)
        self.z = probe_noise(cfg.eval_samples, cfg.z_dim, cfg.eval_seed)  # (N, z_dim)
        self.head = feature_head(classifier, batch_size=BATCH)
        _, self.reference = self.head(real_test)  # (N_test, 128): once per run
        self._generate = _compiled(generator, cfg.z_dim)
        self._live = _compiled(live, cfg.z_dim) if live is not None else None
        self.seconds = 0.0

    def images(self, generate: Any = None) -> np.ndarray:
        """G's images of the probe's noise, (N, 28, 28, 1) float32 in [-1, 1]."""
        generate = generate or self._generate
        return np.concatenate(
            [
                generate(tf.constant(self.z[i : i + BATCH])).numpy()
                for i in range(0, len(self.z), BATCH)
            ]
        )

    def __call__(self) -> dict[str, float]:
        start = time.perf_counter()
        scores = self._scores(self._generate)
        if self._live is not None:
            live = self._scores(self._live)
            scores.update({f"{LIVE_PREFIX}{k}": v for k, v in live.items()})
        self.seconds += time.perf_counter() - start
        return scores

    def _scores(self, generate: Any) -> dict[str, float]:
        images = self.images(generate)
        if not np.isfinite(images).all():  # a diverged G: no score means anything
            return dict.fromkeys(SCORES, float("nan"))
        probs, features = self.head(images)
        scores: dict[str, Any] = sample_scores(probs, features, self.reference)
        return {k: float(scores[k]) for k in SCORES}


def _compiled(generator: keras.Model, z_dim: int) -> Any:
    """``generator`` in inference mode, traced once for every call: the batch dimension is
    left open for a shorter last batch."""
    return tf.function(
        lambda z: tf.cast(generator(z, training=False), tf.float32),
        input_signature=[tf.TensorSpec([None, z_dim], tf.float32)],
    )


def for_training(
    cfg: TrainConfig,
    generator: keras.Model,
    classifier: str | os.PathLike[str] | None,
    real_test: np.ndarray,
    live: keras.Model | None = None,
) -> QualityProbe | None:
    """The train stage's probe of ``generator`` (and of ``live``, G, when ``generator`` is its
    average), or None when ``train.eval_interval`` is 0. ``classifier`` is the classifier
    stage's .keras file; ``real_test`` the FCD's reference, the real held-out digits, as in
    the evaluate stage."""
    if not cfg.eval_interval:
        return None
    if classifier is None:
        raise params_error(
            f"train.eval_interval={cfg.eval_interval} scores samples with the classifier "
            "stage's model, and none was given; pass --classifier (dvc.yaml does), or set "
            "train.eval_interval: 0"
        )
    return QualityProbe(cfg, generator, load_model(classifier, "classifier"), real_test, live)
