"""The generator the train stage ships: the live G, its exponential moving average
(``train.ema_decay``) or the best one scored (``train.keep: best``).

Neither changes training. The average is a copy of G that the compiled step updates after
each G step from G's weights, which it only reads; the kept copy is written from outside the
step when the probe scores a new lowest FCD. Both are Keras models of G's architecture, so
saving, export, the probe and the checkpoint treat them as G.

BatchNorm's moving statistics are averaged with the weights (Yazici et al.'s code and
BigGAN's ``G_ema`` do the same): the copy then normalises with the statistics of the weights
it averages, and needs no extra pass over the data before it is scored or exported.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from dcgan.contract import FCD

LIVE, AVERAGED = "live", "averaged"  # training.json's generator.kind
# The probe's scores of the live G, beside the shipped G's, when the two differ (EMA on).
LIVE_PREFIX = "live_"


def copy_of(model: keras.Sequential) -> keras.Sequential:
    """A second model of ``model``'s architecture, dtype policy and weights (every variable,
    BatchNorm's statistics included); its variables are its own."""
    copy = keras.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def ema_decay_at(decay: float, updates: tf.Tensor) -> tf.Tensor:
    """The decay of the ``updates``-th update (0-based): ``min(decay, (1 + n) / (10 + n))``,
    the warm-up of tf.train.ExponentialMovingAverage's ``num_updates``. The first updates
    then weigh the recent weights heavily (0.1 at the first, 0.5 at the eighth), so the
    average forgets G's random initial weights within a few hundred iterations, and only
    from about ``9 / (1 - decay)`` updates on is ``decay`` itself used."""
    n = tf.cast(updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + n) / (10.0 + n))


class Averaged:
    """An exponential moving average of ``generator``'s variables, in a model of its own."""

    def __init__(self, generator: keras.Sequential, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay is in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy_of(generator)
        self._pairs = list(zip(self.model.weights, generator.weights, strict=True))

    def update(self, updates: tf.Tensor) -> None:
        """``average <- b * average + (1 - b) * G`` with ``b = ema_decay_at(decay, updates)``;
        traced into the compiled step, right after G's update."""
        b = ema_decay_at(self.decay, updates)
        for average, live in self._pairs:
            average.assign(b * average.value + (1.0 - b) * live.value)


def lowest_fcd(rows: list[dict[str, float]]) -> dict[str, float]:
    """``best_fcd`` and ``best_fcd_iteration`` of a curve of ``{"iteration", "fcd", ...}``
    rows: the lowest FCD scored (the earliest of equals), where a run could have stopped;
    empty without rows."""
    if not rows:
        return {}
    row = min(rows, key=lambda r: (r[FCD], r["iteration"]))
    return {"best_fcd": row[FCD], "best_fcd_iteration": int(row["iteration"])}


class Best:
    """One copy of ``source``'s weights at the iteration with the lowest FCD scored so far
    (the earliest of equals, as :func:`lowest_fcd`)."""

    def __init__(self, source: keras.Sequential) -> None:
        self.source = source
        self.model = copy_of(source)
        self.iteration: int | None = None
        self.fcd = math.inf

    def offer(self, iteration: int, scores: dict[str, float]) -> bool:
        """Keep the source's weights if ``scores``' FCD is the lowest so far; whether it was."""
        fcd = scores[FCD]
        if not fcd < self.fcd:  # NaN (a diverged G) is never kept
            return False
        for kept, weight in zip(self.model.weights, self.source.weights, strict=True):
            kept.assign(weight)
        self.iteration, self.fcd = iteration, fcd
        return True

    def resumed(self, quality: list[dict[str, float]]) -> None:
        """After a checkpoint restored the kept weights: which iteration they are of, the
        curve's lowest point (as the train stage's ``best_fcd_iteration``)."""
        lowest = lowest_fcd(quality)
        if lowest:
            self.iteration, self.fcd = lowest["best_fcd_iteration"], lowest["best_fcd"]
