"""The book's layer widths (GANs in Action, chapter 4), without TensorFlow: dcgan.gan.models builds
the layers from them, and dcgan.machine.memory counts their weights before TensorFlow loads."""

from __future__ import annotations

import math

from dcgan.contract import IMAGE_SHAPE

KERNEL = 3  # every convolution is 3x3
SEED_SHAPE = (7, 7, 256)  # G's Dense output, reshaped: upsampled twice to 28x28
G_FILTERS = (128, 64)  # G's two hidden Conv2DTranspose layers (strides 2, 1), then 1 channel
D_FILTERS = (32, 64, 128)  # D's three Conv2D layers, stride 2 each: 14x14, 7x7, 4x4
D_FEATURES = 4 * 4 * D_FILTERS[-1]  # Flatten: ceil(28 / 2**3) = 4 with 'same' padding


def _conv(channels_in: int, channels_out: int) -> int:
    return KERNEL * KERNEL * channels_in * channels_out + channels_out


def generator_weights(z_dim: int) -> int:
    """Every number the generator holds: kernels, biases and BatchNorm's four vectors."""
    seed = math.prod(SEED_SHAPE)
    widths = (SEED_SHAPE[-1], *G_FILTERS, IMAGE_SHAPE[-1])
    convs = sum(_conv(a, b) for a, b in zip(widths, widths[1:], strict=False))
    return (z_dim + 1) * seed + convs + 4 * sum(G_FILTERS)


def discriminator_weights() -> int:
    """Every number the discriminator holds (BatchNorm after its second and third convs)."""
    widths = (IMAGE_SHAPE[-1], *D_FILTERS)
    convs = sum(_conv(a, b) for a, b in zip(widths, widths[1:], strict=False))
    return convs + 4 * sum(D_FILTERS[1:]) + D_FEATURES + 1
