"""train.precision: auto resolves by what oneDNN reports of the CPU, and the resolved
precision is what the run records; a bfloat16 step keeps the training semantics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from dcgan import precision
from dcgan.training import GAN

from .conftest import stage_paths, train_outputs

AMX = (
    "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support and Intel AMX with "
    "bfloat16 and 8-bit integer support"
)
AVX512_BF16 = "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support"
AVX512 = "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"


@pytest.mark.parametrize(
    ("isa", "expected"),
    [
        (AMX, "mixed_bfloat16"),
        (AVX512_BF16, "float32"),  # measured slower than float32 without AMX
        (AVX512, "float32"),
        (None, "float32"),  # oneDNN not in use
    ],
)
def test_auto_follows_what_onednn_reports(monkeypatch, isa, expected):
    monkeypatch.setattr(precision, "onednn_isa", lambda: isa)
    resolved, why = precision.resolve("auto")
    assert resolved == expected and why.startswith("auto:")
    assert precision.resolve("mixed_bfloat16")[0] == "mixed_bfloat16"  # explicit wins
    assert precision.resolve("float32")[0] == "float32"


def test_the_probe_reads_this_machines_onednn():
    """The child process really prints oneDNN's isa line here (x86 TensorFlow uses oneDNN
    unless TF_ENABLE_ONEDNN_OPTS=0)."""
    import os
    import platform

    if (
        platform.machine() not in ("x86_64", "AMD64")
        or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0"
    ):
        pytest.skip("TensorFlow does not use oneDNN here")
    precision.onednn_isa.cache_clear()
    isa = precision.onednn_isa()
    assert isa is not None and ("AVX" in isa or "SSE" in isa), isa


@pytest.mark.parametrize("isa", [AMX, AVX512])
def test_the_gan_trains_in_the_resolved_precision(monkeypatch, tiny_train_cfg, tiny_images, isa):
    monkeypatch.setattr(precision, "onednn_isa", lambda: isa)
    gan = GAN(dataclasses.replace(tiny_train_cfg, precision="auto"), tiny_images)
    expected = "bfloat16" if isa == AMX else "float32"
    assert gan.precision == ("mixed_bfloat16" if isa == AMX else "float32")
    assert gan.generator.get_layer("deconv1").compute_dtype == expected
    assert gan.generator.weights[0].dtype == "float32"  # variables stay float32


def snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], v.numpy())}


def test_a_bfloat16_step_keeps_the_training_semantics(tiny_train_cfg, tiny_images):
    gan = GAN(dataclasses.replace(tiny_train_cfg, precision="mixed_bfloat16"), tiny_images)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    gan.d_step(tf.constant(tiny_images[:8]), 1.0)
    assert changed(g0, gan.generator) == set() and changed(d0, gan.discriminator) == set(d0)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    gan.g_step(tf.random.normal([8, gan.cfg.z_dim]))
    assert changed(d0, gan.discriminator) == set() and changed(g0, gan.generator) == set(g0)
    for _ in range(3):
        metrics = gan.train_step()
    assert gan.trace_count == 1
    assert int(gan.d_optimizer.iterations) == 2 * 3 + 1 and int(gan.g_optimizer.iterations) == 4
    assert all(np.isfinite(float(v)) for v in metrics.values())


@pytest.mark.slow  # runs the train and export stages
def test_mlflow_training_json_and_onnx_record_the_resolved_precision(
    monkeypatch, tmp_path, repo_params
):
    from mlflow.tracking import MlflowClient

    from dcgan.pipeline import export, prepare, train
    from dcgan.pipeline.lineage import runs_for_file
    from dcgan.pipeline.store import tracking_uri
    from dcgan.sampling import load_session

    monkeypatch.setattr(precision, "onednn_isa", lambda: AMX)
    prepare.run(dataclasses.replace(repo_params["prepare"], source="sample"), tmp_path / "data")
    cfg = dataclasses.replace(
        repo_params["train"], precision="auto", iterations=2, batch_size=8, sample_interval=1
    )
    train.run(cfg, tmp_path / "data", train_outputs(tmp_path), progress=False)
    paths = stage_paths("export", tmp_path)
    export.run(repo_params["export"], paths["generator"], paths["training"], paths["out"])

    training = json.loads((tmp_path / "models/training.json").read_text())
    assert training["precision"] == "mixed_bfloat16"
    assert training["params"]["train.precision"] == "auto"
    meta = load_session(tmp_path / "models/generator.onnx").get_modelmeta().custom_metadata_map
    assert meta["trained_precision"] == "mixed_bfloat16"
    (run,) = runs_for_file(tmp_path / "models/generator.onnx")
    assert run.data.tags["precision"] == "mixed_bfloat16"
    assert run.data.params["train.precision"] == "auto"
    assert MlflowClient(tracking_uri()).get_run(run.info.run_id).info.status == "FINISHED"
