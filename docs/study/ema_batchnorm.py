"""Does the averaged generator need its BatchNorm statistics recomputed?

dcgan.gan.shipped averages BatchNorm's moving statistics with the weights. The alternative is to
recompute them for the averaged weights before scoring and export: each BatchNorm's mean and
variance of its own inputs, over fresh noise, layer by layer. This scores an averaged
generator both ways, by the evaluate stage's functions on its noise (``evaluate.seed``) and
sample count, against the prepared real test digits:

    python docs/study/ema_batchnorm.py models/generator.keras [--samples 10000]

It prints one Markdown row per way ("as shipped": an averaged generator's statistics are
averaged with its weights, a live G's are BatchNorm's own moving averages). The recomputed
statistics use noise of their own seed, never the scoring noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dcgan.config import load_config
from dcgan.contract import draw_noise
from dcgan.data import load_prepared
from dcgan.errors import run_main
from dcgan.gan.models import generator_z_dim
from dcgan.gan.shipped import copy_of
from dcgan.quality.classifier import feature_head
from dcgan.quality.evaluation import keras_generate, sample_scores
from dcgan.saving import load_model

RECOMPUTE_SEED = 7  # the noise the statistics are recomputed over: not evaluate's seed 0
RECOMPUTE_SAMPLES = 8192


def recomputed(generator, samples: int = RECOMPUTE_SAMPLES):
    """A copy of ``generator`` whose every BatchNorm holds the mean and variance of its inputs
    over ``samples`` noise vectors, each layer's computed after the ones before it."""
    import keras

    copy = copy_of(generator)
    z = draw_noise(samples, generator_z_dim(generator), RECOMPUTE_SEED)
    for i, layer in enumerate(copy.layers):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        x = z
        for before in copy.layers[:i]:  # in inference mode, the earlier statistics new
            x = before(x, training=False)
        x = np.asarray(x, np.float64)
        axes = tuple(range(x.ndim - 1))  # every axis but the channels
        layer.moving_mean.assign(x.mean(axis=axes).astype(np.float32))
        layer.moving_variance.assign(x.var(axis=axes).astype(np.float32))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator", type=Path, help="an averaged generator (.keras)")
    parser.add_argument("--samples", type=int, help="default: evaluate.num_samples")
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--classifier", type=Path, default=Path("models/mnist_classifier.keras"))
    args = parser.parse_args()
    cfg = load_config("evaluate")
    generator = load_model(args.generator, "train")
    head = feature_head(load_model(args.classifier, "classifier"))
    _, reference = head(load_prepared(args.data).x_test)
    z = draw_noise(args.samples or cfg.num_samples, generator_z_dim(generator), cfg.seed)
    print("| BatchNorm statistics | FCD | MNIST score | class shares |")
    print("|---|---|---|---|")
    for label, model in (
        ("as shipped", generator),
        (f"recomputed over {RECOMPUTE_SAMPLES} noise vectors", recomputed(generator)),
    ):
        scores = sample_scores(*head(keras_generate(model, z)), reference)
        print(
            f"| {label} | {scores['fcd']:.2f} | {scores['mnist_score']:.2f} | "
            f"{100 * scores['min_class_share']:.1f}-{100 * scores['max_class_share']:.1f} % |"
        )


if __name__ == "__main__":
    sys.exit(run_main(main))
