"""ONNX export: parity with Keras, names, dynamic batch, metadata; evaluate's tolerance gate."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from dcgan.contract import draw_noise
from dcgan.pipeline import evaluate
from dcgan.pipeline.paths import EvaluatePaths, PreparePaths
from dcgan.quality.evaluation import keras_generate
from dcgan.shipping.export import generator_to_onnx
from dcgan.shipping.sampling import generate, load_session, z_dim_of


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_train_cfg, tiny_images):
    """A generator after a few real steps, so BatchNorm statistics are not at their defaults."""
    from dcgan.gan.loop import train_loop
    from dcgan.gan.training import GAN

    gan = GAN(tiny_train_cfg, tiny_images)
    train_loop(gan, progress=False)
    folder = tmp_path_factory.mktemp("export")
    model = generator_to_onnx(gan.generator, opset=17, metadata={"params": "{}"})
    onnx.save(model, str(folder / "generator.onnx"))
    gan.generator.save(folder / "generator.keras")
    # evaluate also needs a classifier and real images; an untrained one is enough here.
    from dcgan.config import PrepareConfig
    from dcgan.pipeline import prepare
    from dcgan.quality.classifier import build_classifier

    build_classifier().save(folder / "mnist_classifier.keras")
    prepare.run(
        PrepareConfig(source="sample", test_fraction=0.2, seed=0), PreparePaths(folder / "prepared")
    )
    return gan.generator, folder


@pytest.mark.parametrize("batch", [1, 17])
def test_onnx_matches_keras(trained, batch):
    generator, folder = trained
    session = load_session(folder / "generator.onnx")
    z = draw_noise(batch, 100, seed=batch)
    onnx_out = generate(session, z)
    keras_out = keras_generate(generator, z)
    assert onnx_out.shape == keras_out.shape == (batch, 28, 28, 1)
    assert np.abs(onnx_out - keras_out).max() <= 1e-5


def test_onnx_interface_and_metadata(trained):
    _, folder = trained
    model = onnx.load(str(folder / "generator.onnx"))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "z" and out.name == "image"
    in_dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim]
    # Dynamic batch, named the same in every export (tf2onnx's name is per process).
    assert in_dims == ["batch", 100] and out_dims == ["batch", 28, 28, 1]
    meta = {p.key: p.value for p in model.metadata_props}
    assert "z_dim" not in meta and meta["layout"] == "NHWC"  # the input shape carries it
    assert "[-1, 1]" in meta["output_range"] and json.loads(meta["params"]) == {}
    assert z_dim_of(load_session(folder / "generator.onnx")) == 100


def test_onnx_output_does_not_depend_on_the_batch(trained):
    """A training-mode trace would normalise with batch statistics; ours must not."""
    _, folder = trained
    session = load_session(folder / "generator.onnx")
    z = draw_noise(9, 100, seed=0)
    alone = np.concatenate([generate(session, z[i : i + 1]) for i in range(9)])
    assert np.abs(alone - generate(session, z)).max() <= 1e-6


def _evaluate(folder, reports, tolerance, classifier="mnist_classifier.keras", num_samples=200):
    from dcgan.config import EvaluateConfig

    cfg = EvaluateConfig(
        num_samples=num_samples, seed=0, tolerance=tolerance, registered_model="dcgan-generator"
    )
    paths = EvaluatePaths(
        onnx=folder / "generator.onnx",
        generator=folder / "generator.keras",
        classifier=folder / classifier,
        data=folder / "prepared",
        metrics=reports / "metrics.json",
        class_shares=reports / "class_shares.json",
        grid=reports / "onnx_samples.png",
        by_class=reports / "samples_by_class.png",
    )
    return evaluate.run(cfg, paths)


def test_evaluate_writes_metrics_and_grid(trained, tmp_path):
    _, folder = trained
    metrics = _evaluate(folder, tmp_path, tolerance=1e-5)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics and saved["num_samples"] == 200
    assert 0 <= saved["onnx_max_abs_diff"] <= 1e-5 and saved["onnx_within_tolerance"] is True
    assert (tmp_path / "onnx_samples.png").stat().st_size > 0
    assert (tmp_path / "samples_by_class.png").stat().st_size > 0
    for key in (
        "fcd",
        "fcd_real_floor",
        "mnist_score",
        "mnist_score_real",
        "min_class_share",
        "class_kl_from_uniform",
        "confidence",
        "confidence_real",
        "memorisation_ratio",
    ):
        assert np.isfinite(saved[key]), key
    shares = json.loads((tmp_path / "class_shares.json").read_text())
    assert sorted(shares) == [str(d) for d in range(10)]
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)


def test_a_missing_classifier_names_the_classifier_stage(trained, tmp_path):
    from dcgan.errors import DcganError

    _, folder = trained
    with pytest.raises(DcganError, match=r"missing.keras not found; run `dvc repro classifier`"):
        _evaluate(folder, tmp_path, tolerance=1e-5, classifier="missing.keras")


def test_an_onnx_file_from_another_generator_is_refused(trained, tmp_path):
    import shutil

    from dcgan.errors import DcganError

    generator, folder = trained
    model = generator_to_onnx(generator, 17, {"generator_sha256": "0" * 64})
    other = tmp_path / "export"
    shutil.copytree(folder, other)
    onnx.save(model, str(other / "generator.onnx"))
    with pytest.raises(DcganError, match="was exported from another generator than"):
        _evaluate(other, tmp_path, tolerance=1e-5)
    assert not (tmp_path / "metrics.json").exists()


def test_too_few_samples_for_the_fcd_are_refused_before_any_work(trained, tmp_path):
    """An FCD of two samples was registered as a candidate for champion."""
    from dcgan.errors import DcganError

    _, folder = trained
    with pytest.raises(DcganError, match=r"num_samples=128 is too few .* use at least 129"):
        _evaluate(folder, tmp_path, tolerance=1e-5, num_samples=128)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_fails_above_tolerance(trained, tmp_path):
    from dcgan.errors import DcganError

    _, folder = trained
    with pytest.raises(DcganError, match="above evaluate.tolerance"):
        _evaluate(folder, tmp_path, tolerance=1e-12)


def test_mixed_bfloat16_generator_exports_as_float32_with_parity(tiny_train_cfg, tiny_images):
    import dataclasses

    from dcgan.gan.loop import train_loop
    from dcgan.gan.training import GAN
    from dcgan.shipping.sampling import generate as ort_generate

    gan = GAN(dataclasses.replace(tiny_train_cfg, precision="mixed_bfloat16"), tiny_images)
    history = train_loop(gan, progress=False)
    assert all(np.isfinite(v) for row in history.rows for v in row.values())
    assert gan.generator.layers[0].dtype_policy.compute_dtype == "bfloat16"
    model = generator_to_onnx(gan.generator, opset=17)
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    z = draw_noise(17, 100, seed=0)
    # The reference is the float32 maths of the same weights, which is what ONNX holds.
    assert np.abs(ort_generate(session, z) - keras_generate(gan.generator, z)).max() <= 1e-5
