"""The book's generator and discriminator (GANs in Action, chapter 4), in Keras 3.

Shapes follow the book's code, not its comments: the discriminator's third convolution
with ``padding='same'`` and stride 2 turns 7x7x64 into 4x4x128 (the book's comment says
3x3x128), so Flatten gives 2048 features.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from dcgan.config import FLOAT32
from dcgan.contract import IMAGE_SHAPE, INPUT_NAME
from dcgan.gan.architecture import D_FILTERS, G_FILTERS, KERNEL, SEED_SHAPE


def build_generator(
    z_dim: int, leaky_slope: float = 0.01, synchronized_bn: bool = False
) -> keras.Sequential:
    """z (N, z_dim) -> image (N, 28, 28, 1) in [-1, 1].

    ``synchronized_bn``: BatchNorm statistics over the global batch under a multi-device
    strategy, so training on N devices normalises as on one.
    """
    return keras.Sequential(
        [
            keras.Input(shape=(z_dim,), name=INPUT_NAME),
            layers.Dense(SEED_SHAPE[0] * SEED_SHAPE[1] * SEED_SHAPE[2], name="dense"),  # (N, 12544)
            layers.Reshape(SEED_SHAPE, name="reshape"),  # (N, 7, 7, 256)
            layers.Conv2DTranspose(
                G_FILTERS[0], KERNEL, strides=2, padding="same", name="deconv1"
            ),  # (N, 14, 14, 128)
            layers.BatchNormalization(synchronized=synchronized_bn, name="bn1"),
            layers.LeakyReLU(negative_slope=leaky_slope, name="lrelu1"),
            layers.Conv2DTranspose(
                G_FILTERS[1], KERNEL, strides=1, padding="same", name="deconv2"
            ),  # (N, 14, 14, 64)
            layers.BatchNormalization(synchronized=synchronized_bn, name="bn2"),
            layers.LeakyReLU(negative_slope=leaky_slope, name="lrelu2"),
            layers.Conv2DTranspose(
                IMAGE_SHAPE[-1], KERNEL, strides=2, padding="same", name="deconv3"
            ),  # (N, 28, 28, 1)
            layers.Activation("tanh", name="tanh"),
        ],
        name="generator",
    )


def build_discriminator(
    leaky_slope: float = 0.01, synchronized_bn: bool = False
) -> keras.Sequential:
    """image (N, 28, 28, 1) -> probability (N, 1) that the image is real."""
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE, name="image"),
            layers.Conv2D(D_FILTERS[0], KERNEL, strides=2, padding="same", name="conv1"),
            # (N, 14, 14, 32)
            layers.LeakyReLU(negative_slope=leaky_slope, name="lrelu1"),
            layers.Conv2D(D_FILTERS[1], KERNEL, strides=2, padding="same", name="conv2"),
            # (N, 7, 7, 64)
            layers.BatchNormalization(synchronized=synchronized_bn, name="bn2"),
            layers.LeakyReLU(negative_slope=leaky_slope, name="lrelu2"),
            # The book's comment says 3x3x128; 'same' padding with stride 2 gives ceil(7/2) = 4.
            layers.Conv2D(D_FILTERS[2], KERNEL, strides=2, padding="same", name="conv3"),
            # (N, 4, 4, 128)
            layers.BatchNormalization(synchronized=synchronized_bn, name="bn3"),
            layers.LeakyReLU(negative_slope=leaky_slope, name="lrelu3"),
            layers.Flatten(name="flatten"),  # (N, 2048)
            layers.Dense(1, activation="sigmoid", name="dense"),  # (N, 1)
        ],
        name="discriminator",
    )


def build_models(
    z_dim: int, leaky_slope: float, precision: str = FLOAT32, synchronized_bn: bool = False
) -> tuple[keras.Sequential, keras.Sequential]:
    """(generator, discriminator) computing in ``precision``; variables stay float32.

    Under mixed_bfloat16 the discriminator's last Dense still outputs float32, so the
    sigmoid and the cross-entropy are computed at full precision.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        generator = build_generator(z_dim, leaky_slope, synchronized_bn)
        discriminator = build_discriminator(leaky_slope, synchronized_bn)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if precision != FLOAT32:
        discriminator = as_float32(discriminator, output_only=True)
    return generator, discriminator


def as_float32(model: keras.Sequential, output_only: bool = False) -> keras.Sequential:
    """A copy of ``model`` computing in float32 with the same weights (for export and parity:
    ONNX runtimes have no bfloat16 ConvTranspose). ``output_only``: only the last layer."""

    def to_float32(node, is_last: bool) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and (is_last or not output_only):
                node["config"]["name"] = FLOAT32
            for value in node.values():
                to_float32(value, is_last)
        elif isinstance(node, list):
            for value in node:
                to_float32(value, is_last)

    config = model.get_config()
    layers_config = config["layers"]
    for i, layer in enumerate(layers_config):
        to_float32(layer, i == len(layers_config) - 1)
    copy = keras.Sequential.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def train_forward(
    model: keras.Sequential, x: tf.Tensor, update_statistics: bool = True
) -> tf.Tensor:
    """``model(x, training=True)``, with BatchNorm on TensorFlow's fused kernel.

    Keras 3 builds training-mode BatchNorm from separate moments and arithmetic ops; the
    fused kernel (and its gradient) is 2-4x faster on CPU, and G and D spend a large part of
    each step there. Same maths: normalise with the batch mean and biased variance, move the
    moving statistics by ``momentum`` towards them (Keras updates with the biased variance;
    the fused op returns the unbiased one, so it is rescaled). With ``update_statistics``
    False the moving statistics are left alone, as for the frozen D in the G step.
    """
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization):
            x = layer(x, training=True)
        elif _fusable(layer, x):
            x = _fused_batch_norm(layer, x, update_statistics)
        elif update_statistics:
            x = layer(x, training=True)
        else:  # e.g. synchronized BatchNorm: Keras' layer, its updates returned and dropped
            trainable = [v.value for v in layer.trainable_variables]
            non_trainable = [v.value for v in layer.non_trainable_variables]
            x, _ = layer.stateless_call(trainable, non_trainable, x, training=True)
    return x


def _fusable(layer: layers.BatchNormalization, x: tf.Tensor) -> bool:
    return (
        x.shape.rank == 4
        and layer.axis in (-1, 3)
        and layer.center
        and layer.scale
        and not layer.synchronized
        and layer.trainable
    )


def _fused_batch_norm(
    layer: layers.BatchNormalization, x: tf.Tensor, update_statistics: bool
) -> tf.Tensor:
    x = tf.cast(x, layer.compute_dtype)  # what the layer's own call would do
    y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        x,
        tf.cast(layer.gamma, tf.float32),
        tf.cast(layer.beta, tf.float32),
        epsilon=layer.epsilon,
        data_format="NHWC",
        is_training=True,
    )
    if update_statistics:
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        variance = unbiased_variance * (n - 1.0) / n
        m = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * m + mean * (1.0 - m))
        layer.moving_variance.assign(layer.moving_variance * m + variance * (1.0 - m))
    return y


def generator_z_dim(generator: keras.Model) -> int:
    """The noise width a (possibly loaded) generator expects."""
    return int(generator.input_shape[-1])
