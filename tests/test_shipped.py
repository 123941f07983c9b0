"""The generator the train stage ships (dcgan.gan.shipped): the average of G's weights, the copy
of the lowest FCD, and the decaying learning rate; none of them changes what trains."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from dcgan.contract import draw_noise
from dcgan.gan.shipped import Best, ema_decay_at, lowest_fcd
from dcgan.gan.training import GAN, LinearDecay
from dcgan.quality.probe import probe_noise

EMA = 0.9  # a short average, so that a few iterations move it far from G
# What the train stage ships with them: tests/test_probe.py and test_resume.py.


def test_lowest_fcd_is_the_earliest_lowest_point():
    rows = [
        {"iteration": 2, "fcd": 9.0},
        {"iteration": 4, "fcd": 7.0},
        {"iteration": 6, "fcd": 7.0},
    ]
    assert lowest_fcd(rows) == {"best_fcd": 7.0, "best_fcd_iteration": 4}
    assert lowest_fcd([]) == {}


def training_state(gan: GAN) -> dict[str, np.ndarray]:
    """What trains: G, D, both optimizers and the step's RNG, by group and position (Keras
    numbers the optimizers' names per process: adam, adam_1, ...)."""
    return {
        ":".join(k.split(":")[:2]): np.array(v.numpy())
        for k, v in gan.state_variables().items()
        if not k.startswith(("generator_ema:", "generator_best:"))
    }


def test_the_average_changes_no_bit_of_training(tiny_train_cfg, tiny_images):
    plain = GAN(tiny_train_cfg, tiny_images)
    averaged = GAN(dataclasses.replace(tiny_train_cfg, ema_decay=EMA), tiny_images)
    for _ in range(4):
        plain.train_step()
        averaged.train_step()
    before, after = training_state(plain), training_state(averaged)
    assert before.keys() == after.keys()
    assert [k for k in before if not np.array_equal(before[k], after[k])] == []
    ema, live = averaged.averaged.model.get_weights(), averaged.generator.get_weights()
    assert any(not np.array_equal(a, g) for a, g in zip(ema, live, strict=True))
    assert averaged.trace_count == 1  # the update is in the one compiled step


def test_the_average_follows_the_warm_up_rule_for_every_variable(tiny_train_cfg, tiny_images):
    """average_n = b_n * average_(n-1) + (1 - b_n) * G_n with b_n = min(decay, (1+n)/(10+n)),
    from G's initial weights, BatchNorm's moving statistics included."""
    gan = GAN(dataclasses.replace(tiny_train_cfg, ema_decay=EMA), tiny_images)
    expected = gan.generator.get_weights()  # the copy starts as G
    for n in range(5):
        gan.train_step()
        b = min(EMA, (1 + n) / (10 + n))
        assert float(ema_decay_at(EMA, tf.constant(n))) == pytest.approx(b)
        live = gan.generator.get_weights()
        expected = [b * e + (1 - b) * w for e, w in zip(expected, live, strict=True)]
    got = gan.averaged.model.get_weights()
    names = [v.path for v in gan.averaged.model.weights]
    assert any("moving_mean" in n for n in names) and any("moving_variance" in n for n in names)
    for name, e, g in zip(names, expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=name)
    assert float(ema_decay_at(0.999, tf.constant(10**6))) == pytest.approx(0.999)


def test_the_learning_rates_fall_linearly_to_zero_from_the_fraction(tiny_train_cfg, tiny_images):
    # G steps once per iteration, D twice: both reach 0 at the last iteration, 8.
    g_rate, d_rate = LinearDecay(1e-3, 4, 8, 1), LinearDecay(1e-3, 4, 8, 2)
    for iteration, share in [(1, 1.0), (4, 1.0), (5, 0.75), (6, 0.5), (8, 0.0)]:
        assert float(g_rate(iteration - 1)) == pytest.approx(1e-3 * share)
        for step in (2 * iteration - 2, 2 * iteration - 1):  # its real and fake batch
            assert float(d_rate(step)) == pytest.approx(1e-3 * share)
    cfg = dataclasses.replace(tiny_train_cfg, iterations=4, lr_decay_from=0.5)
    gan = GAN(cfg, tiny_images)
    for _ in range(3):
        gan.train_step()
    trainable = [v.numpy().copy() for v in gan.generator.trainable_weights]
    gan.train_step()  # the last: its rate is 0, so Adam moves nothing
    now = [v.numpy() for v in gan.generator.trainable_weights]
    assert all(np.array_equal(a, b) for a, b in zip(trainable, now, strict=True))
    assert gan.trace_count == 1


def test_best_keeps_one_copy_of_the_lowest_fcd_and_never_a_nan(tiny_train_cfg, tiny_images):
    gan = GAN(dataclasses.replace(tiny_train_cfg, eval_interval=1, keep="best"), tiny_images)
    best = gan.best
    kept = {}
    for iteration, fcd in [(1, 50.0), (2, 40.0), (3, 45.0), (4, float("nan")), (5, 40.0)]:
        gan.train_step()
        kept[iteration] = gan.generator.get_weights()
        best.offer(iteration, {"fcd": fcd})
    assert (best.iteration, best.fcd) == (2, 40.0)  # the earliest of equals, as lowest_fcd
    assert all(np.array_equal(a, b) for a, b in zip(best.model.get_weights(), kept[2], strict=True))
    again = Best(gan.generator)
    again.resumed([{"iteration": 2, "fcd": 40.0}, {"iteration": 4, "fcd": 30.0}])
    assert (again.iteration, again.fcd) == (4, 30.0)


def test_the_probe_never_draws_the_evaluate_stages_noise():
    """A generator kept for its probe score is then measured by the evaluate stage on other
    samples: for equal seeds too (both default to 0), the two draws share no row."""
    for seed in (0, 1, 2**32 - 1):
        probe, evaluate = probe_noise(2000, 100, seed), draw_noise(10_000, 100, seed)
        assert not (probe[:, None, :5] == evaluate[None, :, :5]).all(-1).any(), seed
        assert np.array_equal(probe, probe_noise(2000, 100, seed))  # fixed per seed


def test_the_study_recomputes_each_batchnorms_statistics_from_its_own_inputs(
    tiny_train_cfg, tiny_images
):
    """docs/study/ema_batchnorm.py's alternative to averaging the statistics: each BatchNorm
    of a copy holds the mean and variance of its inputs over fresh noise; the rest of the
    copy, and the generator itself, are untouched."""
    import importlib.util

    from .conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "ema_batchnorm", ROOT / "docs/study/ema_batchnorm.py"
    )
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)

    gan = GAN(dataclasses.replace(tiny_train_cfg, ema_decay=EMA), tiny_images)
    for _ in range(3):
        gan.train_step()
    averaged = gan.averaged.model
    before = {v.path: v.numpy().copy() for v in averaged.weights}
    copy = study.recomputed(averaged, samples=512)
    assert all(np.array_equal(before[v.path], v.numpy()) for v in averaged.weights)
    z = draw_noise(512, tiny_train_cfg.z_dim, study.RECOMPUTE_SEED)
    x = z
    for layer in copy.layers:
        if layer.name.startswith("bn"):
            inputs = np.asarray(x, np.float64)
            np.testing.assert_allclose(
                layer.moving_mean.numpy(), inputs.mean((0, 1, 2)), rtol=1e-4, atol=1e-5
            )
            np.testing.assert_allclose(
                layer.moving_variance.numpy(), inputs.var((0, 1, 2)), rtol=1e-3, atol=1e-5
            )
        x = layer(x, training=False)
    statistics = ("moving_mean", "moving_variance")
    for v in copy.weights:
        if not v.path.endswith(statistics):
            assert np.array_equal(before[v.path], v.numpy()), v.path
