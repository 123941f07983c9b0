"""Layer-by-layer shapes of the book's generator and discriminator."""

from __future__ import annotations

import pytest

from dcgan.models import build_discriminator, build_generator

GENERATOR_SHAPES = [
    ("dense", (None, 7 * 7 * 256)),
    ("reshape", (None, 7, 7, 256)),
    ("deconv1", (None, 14, 14, 128)),
    ("bn1", (None, 14, 14, 128)),
    ("lrelu1", (None, 14, 14, 128)),
    ("deconv2", (None, 14, 14, 64)),
    ("bn2", (None, 14, 14, 64)),
    ("lrelu2", (None, 14, 14, 64)),
    ("deconv3", (None, 28, 28, 1)),
    ("tanh", (None, 28, 28, 1)),
]

DISCRIMINATOR_SHAPES = [
    ("conv1", (None, 14, 14, 32)),
    ("lrelu1", (None, 14, 14, 32)),
    ("conv2", (None, 7, 7, 64)),
    ("bn2", (None, 7, 7, 64)),
    ("lrelu2", (None, 7, 7, 64)),
    ("conv3", (None, 4, 4, 128)),  # the book's comment says 3x3; 'same' padding gives 4x4
    ("bn3", (None, 4, 4, 128)),
    ("lrelu3", (None, 4, 4, 128)),
    ("flatten", (None, 2048)),
    ("dense", (None, 1)),
]


def test_generator_layers():
    g = build_generator(100)
    assert [(layer.name, tuple(layer.output.shape)) for layer in g.layers] == GENERATOR_SHAPES
    assert g.input_shape == (None, 100)


def test_discriminator_layers():
    d = build_discriminator()
    assert [(layer.name, tuple(layer.output.shape)) for layer in d.layers] == DISCRIMINATOR_SHAPES
    assert d.layers[-1].activation.__name__ == "sigmoid"


def test_parameter_counts_match_the_book_architecture():
    # Dense 100*12544+12544; deconvs 3*3*256*128+128, 3*3*128*64+64, 3*3*64*1+1;
    # BN 4 per channel (gamma, beta, moving mean and variance).
    g = build_generator(100)
    assert g.count_params() == (100 * 12544 + 12544) + (9 * 256 * 128 + 128) + 4 * 128 + (
        9 * 128 * 64 + 64
    ) + 4 * 64 + (9 * 64 + 1)
    d = build_discriminator()
    assert d.count_params() == (9 * 32 + 32) + (9 * 32 * 64 + 64) + 4 * 64 + (
        9 * 64 * 128 + 128
    ) + 4 * 128 + (2048 + 1)


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_slope_is_applied_everywhere(slope):
    for model in (build_generator(100, slope), build_discriminator(slope)):
        slopes = [layer.negative_slope for layer in model.layers if "lrelu" in layer.name]
        assert slopes and all(s == pytest.approx(slope) for s in slopes)


def test_generator_output_range_and_z_dim():
    import numpy as np

    g = build_generator(16)
    out = g(np.random.default_rng(0).standard_normal((3, 16)).astype("float32"), training=False)
    assert out.shape == (3, 28, 28, 1)
    assert float(np.abs(out).max()) <= 1.0
