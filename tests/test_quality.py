"""Quality metrics behave as a reader relies on: real data near the references, noise,
a single repeated digit and copied training images clearly flagged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from dcgan.pipeline.paths import PreparePaths
from dcgan.quality import scores


def test_frechet_distance_identities():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 8))
    assert scores.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.full(8, 0.5)
    assert scores.frechet_distance(a, a + shift) == pytest.approx(8 * 0.25, rel=1e-6)
    # Scaling by s multiplies covariances by s^2: distance = sum (1 - s)^2 * var.
    d = scores.frechet_distance(a, 2 * a)
    assert d == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-3)


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(
            np.linalg.LinAlgError("Internal error in scipy.linalg.sqrtm: -102"), id="raises"
        ),
        pytest.param(np.full((8, 8), np.nan), id="non-finite"),
    ],
)
def test_frechet_distance_survives_a_failing_sqrtm(monkeypatch, broken):
    """A collapsed generator's features can make SciPy's sqrtm fail outright (seen during
    training); the eigenvalue route gives the same distance where both work."""
    import scipy.linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 8)), rng.normal(0.3, 1.2, size=(400, 8))
    expected = scores.frechet_distance(a, b)

    def sqrtm(matrix, disp=True):
        if isinstance(broken, Exception):
            raise broken
        return broken, 0.0

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm)
    assert scores.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert scores.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_mnist_score_extremes():
    one_hot = np.eye(10)[np.arange(1000) % 10]
    assert scores.mnist_score(one_hot) == pytest.approx(10.0, rel=1e-6)
    assert scores.mnist_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)
    assert scores.mnist_score(np.eye(10)[np.zeros(100, int)]) == pytest.approx(1.0)


def test_class_coverage():
    balanced = scores.class_coverage(np.eye(10)[np.arange(100) % 10])
    assert balanced["min_class_share"] == balanced["max_class_share"] == 0.1
    assert balanced["class_kl_from_uniform"] == pytest.approx(0.0, abs=1e-9)
    single = scores.class_coverage(np.eye(10)[np.full(50, 3)])
    assert single["min_class_share"] == 0 and single["max_class_share"] == 1
    assert single["class_kl_from_uniform"] == pytest.approx(np.log(10))


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(1)
    q, r = rng.standard_normal((37, 5, 5)), rng.standard_normal((53, 5, 5))
    expected = cdist(q.reshape(37, -1), r.reshape(53, -1)).min(axis=1)
    assert np.allclose(scores.nearest_distances(q, r, chunk=8), expected, atol=1e-4)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from dcgan.config import PrepareConfig
    from dcgan.data import load_prepared
    from dcgan.pipeline import prepare

    out = tmp_path_factory.mktemp("q") / "prepared"
    prepare.run(PrepareConfig(source="sample", test_fraction=0.2, seed=0), PreparePaths(out))
    return load_prepared(out)


@pytest.fixture(scope="module")
def classifier(real):
    """Small on purpose: four epochs on the 4 000 bundled digits (a few seconds)."""
    from dcgan.config import ClassifierConfig
    from dcgan.quality.classifier import train_classifier

    return train_classifier(
        ClassifierConfig(epochs=4, batch_size=128, seed=0), real.x_train, real.y_train
    )


@pytest.fixture(scope="module")
def reference(classifier, real):
    from dcgan.quality.evaluation import quality_metrics

    metrics, _ = quality_metrics(classifier, real.x_test, real.x_test, real.x_train)
    return metrics


def score(classifier, real, images):
    from dcgan.quality.evaluation import quality_metrics

    return quality_metrics(classifier, images, real.x_test, real.x_train)[0]


def test_classifier_learns(classifier, real):
    from dcgan.quality.classifier import accuracy, feature_head

    assert accuracy(feature_head(classifier), real.x_test, real.y_test) > 0.9


def test_real_images_are_near_the_references(reference):
    assert reference["mnist_score"] > 7.0  # ceiling ~10
    assert reference["mnist_score"] == pytest.approx(reference["mnist_score_real"])
    assert reference["fcd"] == pytest.approx(0.0, abs=1e-6)  # test vs itself
    assert reference["min_class_share"] > 0.06 and reference["max_class_share"] < 0.14
    assert reference["memorisation_ratio"] == pytest.approx(1.0)


def test_noise_scores_clearly_worse(classifier, real, reference):
    noise = np.random.default_rng(0).uniform(-1, 1, (500, 28, 28, 1)).astype(np.float32)
    m = score(classifier, real, noise)
    assert m["mnist_score"] < 0.5 * reference["mnist_score_real"]
    assert m["fcd"] > 10 * m["fcd_real_floor"]
    assert m["class_kl_from_uniform"] > 0.5


def test_single_repeated_digit_has_poor_coverage(classifier, real, reference):
    one = np.repeat(real.x_test[real.y_test == 7][:1], 500, axis=0)
    m = score(classifier, real, one)
    assert m["max_class_share"] == 1.0 and m["min_class_share"] == 0.0
    assert m["mnist_score"] < 1.5
    assert m["fcd"] > 10 * m["fcd_real_floor"]


def test_copied_training_images_trip_the_memorisation_ratio(classifier, real):
    copies = real.x_train[:500]
    m = score(classifier, real, copies)
    assert m["memorisation_ratio"] < 0.05
    assert m["nn_distance_generated"] == pytest.approx(0.0, abs=1e-2)
