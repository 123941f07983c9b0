"""Layer-by-layer shapes of the book's generator and discriminator."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.gan.models import build_discriminator, build_generator

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


@pytest.mark.parametrize("z_dim", [2, 100, 512])
def test_the_memory_estimate_counts_the_weights_keras_builds(z_dim):
    """dcgan.gan.architecture counts the weights without TensorFlow (for
    dcgan.machine.memory's estimate); it must count what dcgan.gan.models builds from the
    same widths."""
    from dcgan.gan.architecture import discriminator_weights, generator_weights

    assert generator_weights(z_dim) == build_generator(z_dim).count_params()
    assert discriminator_weights() == build_discriminator().count_params()


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


def _perturbed_copies(build):
    """Two copies of a model with the same random weights and BatchNorm statistics."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = build(), build()
    a.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in a.get_weights()])
    b.set_weights(a.get_weights())
    return a, b


@pytest.mark.parametrize("which", ["generator", "discriminator"])
def test_train_forward_is_keras_training_mode_with_fused_batchnorm(which):
    """Same outputs, same gradients, same moving-statistics updates as model(x, training=True)."""
    import numpy as np
    import tensorflow as tf

    from dcgan.gan.models import train_forward

    build = (lambda: build_generator(100)) if which == "generator" else build_discriminator
    keras_model, ours = _perturbed_copies(build)
    rng = np.random.default_rng(1)
    x = tf.constant(
        rng.standard_normal((16, 100)).astype(np.float32)
        if which == "generator"
        else rng.uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    )

    def run(model, forward):
        with tf.GradientTape() as tape:
            y = forward(model, x)
            loss = tf.reduce_mean(tf.square(y - 0.3))
        return y, tape.gradient(loss, model.trainable_variables)

    y1, g1 = run(keras_model, lambda m, x: m(x, training=True))
    y2, g2 = run(ours, train_forward)
    assert np.abs(y1.numpy() - y2.numpy()).max() <= 1e-5
    for a, b in zip(g1, g2, strict=True):
        assert np.abs(a.numpy() - b.numpy()).max() <= 1e-5 * (1 + np.abs(a.numpy()).max())
    for a, b in zip(keras_model.non_trainable_weights, ours.non_trainable_weights, strict=True):
        assert np.abs(a.numpy() - b.numpy()).max() <= 1e-6  # moving mean and variance


def test_train_forward_can_leave_batchnorm_statistics_alone():
    import numpy as np

    from dcgan.gan.models import train_forward

    keras_model, ours = _perturbed_copies(build_discriminator)
    before = [w.numpy().copy() for w in ours.non_trainable_weights]
    x = np.random.default_rng(2).uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
    out = train_forward(ours, x, update_statistics=False)
    after = [w.numpy() for w in ours.non_trainable_weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # ...while still normalising with the batch's statistics, as training mode does
    assert np.abs(out.numpy() - keras_model(x, training=True).numpy()).max() <= 1e-5


def test_saved_keras_file_holds_no_timestamp(tmp_path):
    """Keras stamps .keras files with the time of saving; ours are a function of the model."""
    import json
    import re
    import zipfile

    from dcgan.gan.models import build_generator
    from dcgan.saving import load_model, save_model

    generator = build_generator(100)
    save_model(generator, tmp_path / "a.keras")
    save_model(generator, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.keras") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "date_saved" not in json.loads(zf.read("metadata.json"))
        # Keras numbers shared objects by id(), a memory address that differs per process.
        config = zf.read("config.json").decode()
    ids = {int(x) for x in re.findall(r'"shared_object_id": (\d+)', config)}
    assert ids == {0}  # one shared dtype policy, numbered from 0
    loaded = load_model(tmp_path / "a.keras", "train")
    for a, b in zip(generator.weights, loaded.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
