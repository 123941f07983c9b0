"""Quality during training (train.eval_interval): the probe scores G as the evaluate stage
would, is recorded where runs are compared, and leaves the training's bits alone."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dcgan.errors import DcganError
from dcgan.pipeline.paths import PreparePaths

from .conftest import paths_of


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, repo_params):
    """The sample digits, prepared, and an untrained classifier as the scorer: the scores'
    values do not matter here, only where they go and what they leave alone."""
    from dcgan.pipeline import prepare
    from dcgan.quality.classifier import build_classifier
    from dcgan.saving import save_model

    root = tmp_path_factory.mktemp("probe")
    prepare.run(
        dataclasses.replace(repo_params["prepare"], source="sample"), PreparePaths(root / "data")
    )
    save_model(build_classifier(), root / "classifier.keras")
    return root


@pytest.fixture
def cfg(tiny_train_cfg):
    # Checkpoints at every interval too: the quality rows must survive them.
    return dataclasses.replace(
        tiny_train_cfg, iterations=6, sample_interval=2, checkpoint_interval=2, eval_samples=200
    )


def train(cfg, prepared, out, eval_interval):
    from dcgan.pipeline import train as stage

    stage.run(
        dataclasses.replace(cfg, eval_interval=eval_interval),
        paths_of(
            "train",
            out,
            data=prepared / "data",
            checkpoints=out / "ckpt",
            classifier=prepared / "classifier.keras",
        ),
        progress=False,
    )
    return out


@pytest.mark.slow  # runs the train stage
def test_scoring_changes_no_bit_of_the_training(cfg, prepared, tmp_path):
    off = train(cfg, prepared, tmp_path / "off", 0)
    on = train(cfg, prepared, tmp_path / "on", 2)
    for name in ("models/generator.keras", "models/discriminator.keras"):
        assert (on / name).read_bytes() == (off / name).read_bytes(), name
    history = "reports/train_history.csv"
    assert (on / history).read_text() == (off / history).read_text()
    assert json.loads((off / "reports/quality.json").read_text()) == []
    assert "best_fcd" not in json.loads((off / "reports/train_metrics.json").read_text())


@pytest.mark.slow  # runs the train stage
def test_scores_go_to_the_plots_file_the_metrics_training_json_and_mlflow(cfg, prepared, tmp_path):
    from mlflow.tracking import MlflowClient

    from dcgan.tracking.store import tracking_uri

    out = train(cfg, prepared, tmp_path / "on", 4)  # at 4 and at the last, 6
    rows = json.loads((out / "reports/quality.json").read_text())
    assert [r["iteration"] for r in rows] == [4, 6]
    for row in rows:
        assert set(row) == {"iteration", "fcd", "mnist_score", "min_class_share", "max_class_share"}
        assert row["fcd"] >= 0 and 1 <= row["mnist_score"] <= 10
        assert 0 <= row["min_class_share"] <= 0.1 <= row["max_class_share"] <= 1
    lowest = min(rows, key=lambda r: r["fcd"])
    best = {"best_fcd": lowest["fcd"], "best_fcd_iteration": lowest["iteration"]}
    training = json.loads((out / "models/training.json").read_text())
    assert {k: training[k] for k in best} == best
    metrics = json.loads((out / "reports/train_metrics.json").read_text())
    assert {k: metrics[k] for k in best} == best

    client = MlflowClient(tracking_uri())  # this test's store, whatever MLflow's global is
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.experiment).experiment_id])
    for key in ("fcd", "mnist_score", "min_class_share", "max_class_share"):
        got = client.get_metric_history(run.info.run_id, f"quality/{key}")
        assert sorted((m.step, m.value) for m in got) == [(r["iteration"], r[key]) for r in rows]
    assert run.data.metrics["quality/best_fcd"] == best["best_fcd"]
    assert run.data.metrics["quality/best_fcd_iteration"] == best["best_fcd_iteration"]
    assert run.data.metrics["quality/seconds"] > 0


def test_the_probe_scores_as_the_evaluate_stage_and_touches_no_training_state(
    cfg, prepared, tiny_images
):
    from dcgan.data import load_prepared
    from dcgan.gan.training import GAN
    from dcgan.quality.classifier import feature_head
    from dcgan.quality.evaluation import keras_generate, sample_scores
    from dcgan.quality.probe import QualityProbe, probe_noise
    from dcgan.saving import load_model

    gan = GAN(cfg, tiny_images)
    gan.train_step()  # moving statistics and Adam's moments away from their initial values
    classifier = load_model(prepared / "classifier.keras", "classifier")
    real_test = load_prepared(prepared / "data").x_test
    probe = QualityProbe(cfg, gan.generator, classifier, real_test)
    before = {k: np.array(v.numpy()) for k, v in gan.state_variables().items()}
    scores = [probe() for _ in range(3)]
    after = {k: np.array(v.numpy()) for k, v in gan.state_variables().items()}
    # BatchNorm's moving statistics, both optimizers and the step's RNG: the same bits.
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before), [
        k for k in before if not np.array_equal(before[k], after[k])
    ]
    assert scores[0] == scores[1] == scores[2]  # its own fixed noise, G in inference mode
    assert probe._generate.experimental_get_tracing_count() == 1  # traced once, not per call

    # The evaluate stage's functions on the probe's noise give the same scores.
    head = feature_head(classifier)
    z = probe_noise(cfg.eval_samples, cfg.z_dim, cfg.eval_seed)
    probs, features = head(keras_generate(gan.generator, z))
    expected = sample_scores(probs, features, head(real_test)[1])
    for key, value in scores[0].items():
        assert value == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key


def test_too_few_samples_or_no_classifier_is_one_line_before_training(cfg, prepared, tmp_path):
    from dcgan.pipeline import train as stage

    with pytest.raises(DcganError, match=r"train\.eval_samples=128 is too few for the FCD"):
        train(dataclasses.replace(cfg, eval_samples=128), prepared, tmp_path / "few", 2)
    with pytest.raises(DcganError, match=r"pass --classifier .* or set train\.eval_interval: 0"):
        stage.run(
            dataclasses.replace(cfg, eval_interval=2),
            paths_of("train", tmp_path / "none", data=prepared / "data"),
            progress=False,
        )
    assert not (tmp_path / "few/models").exists() and not (tmp_path / "none/models").exists()


def test_a_diverged_generator_stops_training_in_one_line(cfg, prepared, tiny_images):
    """Scored between two sample intervals, a G whose images are NaN ends the run with the
    divergence line, not a traceback from SciPy."""
    from dcgan.data import load_prepared
    from dcgan.gan.loop import train_loop
    from dcgan.gan.training import GAN
    from dcgan.quality.probe import QualityProbe
    from dcgan.saving import load_model

    cfg = dataclasses.replace(cfg, iterations=3, sample_interval=3, eval_interval=1)
    gan = GAN(cfg, tiny_images)
    classifier = load_model(prepared / "classifier.keras", "classifier")
    probe = QualityProbe(cfg, gan.generator, classifier, load_prepared(prepared / "data").x_test)
    assert all(np.isfinite(v) for v in probe().values())
    for weight in gan.generator.trainable_weights:
        weight.assign(np.full(weight.shape, np.nan, np.float32))
    with pytest.raises(
        DcganError, match="training diverged: non-finite quality scores at iteration 1"
    ):
        train_loop(gan, progress=False, probe=probe)


@pytest.mark.slow  # runs the train stage
def test_keep_best_ships_the_averaged_generator_of_the_lowest_fcd(cfg, prepared, tmp_path):
    """train.ema_decay and train.keep: best: the probe scores the average and G, and the
    file shipped is the average at the lowest FCD, as its own score on the probe's noise
    shows."""
    from dcgan.data import load_prepared
    from dcgan.quality.probe import QualityProbe
    from dcgan.saving import load_model

    # G's steps too long to improve steadily: the lowest FCD is not the last iteration's.
    cfg = dataclasses.replace(
        cfg, iterations=8, eval_interval=2, ema_decay=0.5, keep="best", g_learning_rate=0.2
    )
    out = train(cfg, prepared, tmp_path / "run", 2)
    rows = json.loads((out / "reports/quality.json").read_text())
    assert [r["iteration"] for r in rows] == [2, 4, 6, 8]
    assert all({"fcd", "live_fcd", "mnist_score", "live_mnist_score"} <= set(r) for r in rows)
    lowest = min(rows, key=lambda r: (r["fcd"], r["iteration"]))
    assert lowest["iteration"] < cfg.iterations, rows  # else keep: last would pass too
    training = json.loads((out / "models/training.json").read_text())
    assert training["generator"] == {
        "kind": "averaged",
        "keep": "best",
        "iteration": lowest["iteration"],
    }
    metrics = json.loads((out / "reports/train_metrics.json").read_text())
    assert metrics["generator_iteration"] == lowest["iteration"]
    classifier = load_model(prepared / "classifier.keras", "classifier")
    shipped = load_model(out / "models/generator.keras", "train")
    real_test = load_prepared(prepared / "data").x_test
    scores = QualityProbe(cfg, shipped, classifier, real_test)()
    assert scores["fcd"] == pytest.approx(lowest["fcd"], rel=1e-4), (scores, rows)
    assert scores["mnist_score"] == pytest.approx(lowest["mnist_score"], rel=1e-4)
