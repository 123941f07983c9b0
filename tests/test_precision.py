"""train.precision: auto resolves by timing both precisions (cached per machine), and the
resolved precision and the figures are what the run records; a bfloat16 step keeps the
training semantics."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from dcgan.gan.training import GAN
from dcgan.machine import precision, timing
from dcgan.pipeline.paths import ExportPaths, PreparePaths

from .conftest import paths_of, stage_paths


class FakeTimer:
    """Stands in for the child process that times the real steps: returns given figures and
    counts its calls."""

    def __init__(self, float32: float, bfloat16: float) -> None:
        self.seconds = {"float32": float32, "mixed_bfloat16": bfloat16}
        self.calls = 0

    def __call__(self, cfg, recipes=precision.MEASURED):
        assert tuple(recipes) == tuple(self.seconds)  # a CPU times these two, as ever
        self.calls += 1
        return dict(self.seconds)


def auto(cfg):
    return dataclasses.replace(cfg, precision="auto")


@pytest.mark.parametrize(
    ("float32", "bfloat16", "expected"),
    [
        (0.50, 0.31, "mixed_bfloat16"),  # AMX-like: 1.6x
        (0.50, 0.86, "float32"),  # AVX512-BF16 without AMX on Intel: 0.58x
        (0.50, 0.50, "float32"),  # a tie keeps the book's precision
    ],
)
def test_auto_picks_the_faster_measured_precision(tiny_train_cfg, float32, bfloat16, expected):
    timer = FakeTimer(float32, bfloat16)
    choice = precision.resolve(auto(tiny_train_cfg), timer=timer)
    assert choice.precision == expected and timer.calls == 1
    assert choice.seconds == {"float32": float32, "mixed_bfloat16": bfloat16}
    assert choice.reason.startswith("auto:") and f"{float32 / bfloat16:.2f}x" in choice.reason


def test_explicit_precisions_never_measure(tiny_train_cfg):
    timer = FakeTimer(0.5, 0.1)
    for name in ("float32", "mixed_bfloat16"):
        choice = precision.resolve(dataclasses.replace(tiny_train_cfg, precision=name), timer)
        assert choice.precision == name and not choice.measured
    assert timer.calls == 0


def test_the_measurement_is_cached_per_machine_tf_version_and_batch(tiny_train_cfg, monkeypatch):
    timer = FakeTimer(0.5, 0.3)
    cfg = auto(tiny_train_cfg)
    first = precision.resolve(cfg, timer)
    second = precision.resolve(cfg, FakeTimer(0.1, 9.0))  # a cached answer: not asked
    assert first.precision == second.precision == "mixed_bfloat16"
    assert first.seconds == second.seconds and "cached in" in second.reason
    cache = json.loads(precision.cache_path().read_text())
    assert list(cache) == [precision.machine_key(cfg)] == [first.on] == [second.on]
    assert cfg.batch_size == 8 and "batch 8" in precision.machine_key(cfg)
    assert f"on {timing.machine_name()}; cached in" in second.reason

    other_batch = FakeTimer(0.5, 0.9)
    assert precision.resolve(dataclasses.replace(cfg, batch_size=16), other_batch).precision == (
        "float32"
    )
    assert other_batch.calls == 1
    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "9.99.0" if name == "tensorflow" else real_version(name),
    )
    upgraded = FakeTimer(0.5, 0.9)
    assert precision.resolve(cfg, upgraded).precision == "float32" and upgraded.calls == 1
    assert len(json.loads(precision.cache_path().read_text())) == 3


def test_a_damaged_cache_or_a_failed_measurement_falls_back_to_float32(tiny_train_cfg, caplog):
    from dcgan.errors import DcganError

    cfg = auto(tiny_train_cfg)
    precision.cache_path().parent.mkdir(parents=True, exist_ok=True)
    precision.cache_path().write_text("{not json")
    timer = FakeTimer(0.5, 0.2)
    assert precision.resolve(cfg, timer).precision == "mixed_bfloat16" and timer.calls == 1

    precision.cache_path().unlink()

    def broken(cfg, recipes):
        raise DcganError("the precision measurement failed (exit 1: MemoryError)")

    choice = precision.resolve(cfg, broken)
    assert choice.precision == "float32" and not choice.measured
    assert "not measured" in choice.reason and "MemoryError" in choice.reason
    assert not precision.cache_path().exists()  # a failure is not remembered
    assert "training in float32" in caplog.text


def test_a_timing_stops_at_the_first_call_over_its_limit():
    """The median is over the calls timed; a call over ``stop_above`` ends the timing (a
    hopeless bfloat16 step need not be timed five times)."""
    import time

    calls = []

    def step(pause=0.02):
        calls.append(1)
        time.sleep(pause)

    assert timing.median_seconds(step, 5, warmup=1) >= 0.02 and len(calls) == 6
    calls.clear()
    assert timing.median_seconds(step, 5, warmup=1, stop_above=0.01) >= 0.02
    assert len(calls) == 2  # the warm-up, then one timed call over the limit


@pytest.mark.slow  # a TensorFlow child process times both precisions
def test_the_child_times_the_real_steps(tiny_train_cfg):
    """The default timer: a child process builds the GAN in each precision and times it."""
    seconds = precision.measure(tiny_train_cfg)
    assert set(seconds) == {"float32", "mixed_bfloat16"}
    assert all(0 < s < 60 for s in seconds.values()), seconds


@pytest.mark.slow  # a TensorFlow child process times the recipes
def test_the_child_times_xla_and_float16_recipes_when_asked(tiny_train_cfg):
    """A GPU's recipes, timed on this CPU: the child builds the GAN under a loss scale and
    with XLA, and reports each recipe it was given."""
    recipes = ("float32+xla", "mixed_float16")
    seconds = precision.measure(tiny_train_cfg, recipes)
    assert set(seconds) == set(recipes)
    assert all(0 < s < 120 for s in seconds.values()), seconds


class GpuTimer:
    """Figures for a GPU's six recipes: mixed_float16 with XLA fastest."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, cfg, recipes):
        self.asked.append(tuple(recipes))
        fast = {"mixed_float16+xla": 0.004, "mixed_float16": 0.006, "float32+xla": 0.009}
        return {r: fast.get(r, 0.012) for r in recipes}


def test_on_a_gpu_auto_also_times_float16_and_xla_and_keys_its_cache_by_the_gpu(tiny_train_cfg):
    cfg, gpu = auto(tiny_train_cfg), "NVIDIA A100-SXM4-40GB"
    assert precision.candidates() == ("float32", "mixed_bfloat16")  # a CPU, as ever
    assert precision.candidates(gpu) == (
        "float32", "float32+xla", "mixed_float16", "mixed_float16+xla",
        "mixed_bfloat16", "mixed_bfloat16+xla",
    )  # fmt: skip
    # Mirrored runs over several devices: its step is not compiled by XLA.
    assert precision.candidates(gpu, "mirrored") == ("float32", "mixed_float16", "mixed_bfloat16")
    timer = GpuTimer()
    choice = precision.resolve(cfg, timer, device=gpu)
    assert (choice.precision, choice.jit_compile) == ("mixed_float16", True)
    assert timer.asked == [precision.candidates(gpu)]
    assert choice.on == precision.machine_key(cfg, f"{timing.machine_name()} | {gpu}")
    assert "mixed_float16+xla is 3.00x float32's speed" in choice.reason
    # The GPU's figures are cached under its own key; this CPU's are measured apart.
    assert precision.resolve(cfg, GpuTimer(), device=gpu).jit_compile
    on_cpu = precision.resolve(cfg, FakeTimer(0.5, 0.9))
    assert (on_cpu.precision, on_cpu.jit_compile) == ("float32", False)
    assert len(json.loads(precision.cache_path().read_text())) == 2
    # Set in params.yaml: as written, never XLA.
    explicit = precision.resolve(dataclasses.replace(cfg, precision="mixed_float16"), device=gpu)
    assert (explicit.precision, explicit.jit_compile) == ("mixed_float16", False)


def test_a_float16_gan_trains_under_a_dynamic_loss_scale(tiny_train_cfg, tiny_images):
    import keras

    cfg = dataclasses.replace(tiny_train_cfg, precision="mixed_float16")
    gan = GAN(cfg, tiny_images)
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert gan.generator.layers[0].compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in gan.generator.weights)  # variables stay float32
    before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    for _ in range(3):
        losses = {k: float(v) for k, v in gan.train_step().items()}
        assert all(np.isfinite(v) for v in losses.values()), losses
    after = gan.generator.trainable_weights
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, after, strict=True)]
    assert any(moved)
    # The loss scale is state a checkpoint must carry, or a resumed run would rescale.
    assert any("scale" in name for name in gan.state_variables())
    # It exports as float32 maths, as mixed_bfloat16 does, and ONNX computes what Keras does.
    import onnxruntime as ort

    from dcgan.quality.evaluation import keras_generate
    from dcgan.shipping.export import generator_to_onnx

    z = np.random.default_rng(1).standard_normal((16, cfg.z_dim)).astype(np.float32)
    model = generator_to_onnx(gan.generator, 17)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_images,) = session.run(None, {"z": z})
    assert onnx_images.dtype == np.float32
    assert np.abs(onnx_images - keras_generate(gan.generator, z)).max() < 1e-4


@pytest.mark.slow  # compiles the whole step with XLA
def test_an_xla_step_trains_the_same_bits_twice(tiny_train_cfg, tiny_images):
    def trained() -> list[np.ndarray]:
        gan = GAN(tiny_train_cfg, tiny_images, jit_compile=True)
        for _ in range(3):
            gan.train_step()
        assert gan.trace_count == 1
        # The step TensorFlow runs is marked for XLA (the default step is not: see below).
        compiled = gan._compiled_step.get_concrete_function().function_def
        assert compiled.attr["_XlaMustCompile"].b is True
        return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]

    first, second = trained(), trained()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    plain = GAN(tiny_train_cfg, tiny_images)._compiled_step.get_concrete_function()
    assert plain.function_def.attr["_XlaMustCompile"].b is False
    mirrored = dataclasses.replace(tiny_train_cfg, strategy="mirrored", devices="CPU:0")
    with pytest.raises(ValueError, match="default strategy only"):
        GAN(mirrored, tiny_images, jit_compile=True)


@pytest.mark.slow  # starts a TensorFlow process
def test_the_probe_reads_this_machines_onednn():
    """The child process really prints oneDNN's isa line here (x86 TensorFlow uses oneDNN
    unless TF_ENABLE_ONEDNN_OPTS=0); `dcgan bench` reports it."""
    import os
    import platform

    if (
        platform.machine() not in ("x86_64", "AMD64")
        or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0"
    ):
        pytest.skip("TensorFlow does not use oneDNN here")
    timing.onednn_isa.cache_clear()
    isa = timing.onednn_isa()
    assert isa is not None and ("AVX" in isa or "SSE" in isa), isa


@pytest.mark.parametrize(("bfloat16", "expected"), [(0.2, "bfloat16"), (0.9, "float32")])
def test_the_gan_trains_in_the_resolved_precision(
    monkeypatch, tiny_train_cfg, tiny_images, bfloat16, expected
):
    """The train stage resolves auto (dcgan.pipeline.train) and hands GAN the result; the
    stage's own use of it is checked end to end by the MLflow test below."""
    monkeypatch.setattr(precision, "measure", FakeTimer(0.5, bfloat16))
    choice = precision.resolve(auto(tiny_train_cfg))
    gan = GAN(dataclasses.replace(tiny_train_cfg, precision=choice.precision), tiny_images)
    assert gan.precision == ("mixed_bfloat16" if expected == "bfloat16" else "float32")
    assert gan.generator.get_layer("deconv1").compute_dtype == expected
    assert gan.generator.weights[0].dtype == "float32"  # variables stay float32


def test_the_gan_refuses_auto_before_any_work(monkeypatch, tiny_train_cfg, tiny_images):
    """auto is the train stage's to resolve (it times both precisions in a child process):
    the model refuses it before it seeds, builds or times anything."""
    from dcgan.gan import training

    def no_work(*args, **kwargs):
        raise AssertionError("the GAN did work before refusing 'auto'")

    for name in ("seed_everything", "build_models", "make_strategy"):
        monkeypatch.setattr(training, name, no_work)
    with pytest.raises(ValueError, match="resolved precision, not 'auto'"):
        GAN(auto(tiny_train_cfg), tiny_images)


def snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], v.numpy())}


def test_a_bfloat16_step_keeps_the_training_semantics(tiny_train_cfg, tiny_images):
    gan = GAN(dataclasses.replace(tiny_train_cfg, precision="mixed_bfloat16"), tiny_images)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    tf.function(gan.d_update)(tf.constant(tiny_images[:8]), 1.0)
    assert changed(g0, gan.generator) == set() and changed(d0, gan.discriminator) == set(d0)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    tf.function(gan.g_update)(tf.random.normal([8, gan.cfg.z_dim]))
    assert changed(d0, gan.discriminator) == set() and changed(g0, gan.generator) == set(g0)
    for _ in range(3):
        metrics = gan.train_step()
    assert gan.trace_count == 1
    assert int(gan.d_optimizer.iterations) == 2 * 3 + 1 and int(gan.g_optimizer.iterations) == 4
    assert all(np.isfinite(float(v)) for v in metrics.values())


def auto_on_sample_data(repo_params, folder):
    """A two-iteration `train.precision: auto` config, and the sample digits it trains on,
    prepared under ``folder / "data"``; no scoring (no classifier here)."""
    from dcgan.pipeline import prepare

    prepare.run(
        dataclasses.replace(repo_params["prepare"], source="sample"), PreparePaths(folder / "data")
    )
    return dataclasses.replace(
        repo_params["train"],
        precision="auto",
        iterations=2,
        batch_size=8,
        sample_interval=1,
        eval_interval=0,
    )


@pytest.mark.slow  # runs the train and export stages
def test_mlflow_training_json_and_onnx_record_the_resolved_precision(
    monkeypatch, tmp_path, repo_params
):
    from mlflow.tracking import MlflowClient

    from dcgan.pipeline import export, train
    from dcgan.shipping.sampling import load_session
    from dcgan.tracking.lineage import runs_for_file
    from dcgan.tracking.store import tracking_uri

    monkeypatch.setattr(precision, "measure", FakeTimer(0.5, 0.3))
    cfg = auto_on_sample_data(repo_params, tmp_path)
    train.run(cfg, paths_of("train", tmp_path, data=tmp_path / "data"), progress=False)
    paths = stage_paths("export", tmp_path)
    export.run(
        repo_params["export"],
        ExportPaths(generator=paths["generator"], training=paths["training"], out=paths["out"]),
    )

    training = json.loads((tmp_path / "models/training.json").read_text())
    assert training["precision"] == "mixed_bfloat16"
    assert training["params"]["train.precision"] == "auto"
    meta = load_session(tmp_path / "models/generator.onnx").get_modelmeta().custom_metadata_map
    assert meta["trained_precision"] == "mixed_bfloat16"
    (run,) = runs_for_file(tmp_path / "models/generator.onnx", tracking_uri())
    assert run.data.tags["precision"] == "mixed_bfloat16"
    assert run.data.params["train.precision"] == "auto"
    assert training["precision_measured"]["seconds_per_iteration"] == {
        "float32": 0.5,
        "mixed_bfloat16": 0.3,
    }
    assert training["precision_measured"]["on"] == precision.machine_key(cfg)
    assert run.data.metrics["auto_float32_s_per_iteration"] == 0.5
    assert run.data.metrics["auto_mixed_bfloat16_s_per_iteration"] == 0.3
    assert "0.500 s/iteration in float32" in run.data.tags["precision_reason"]
    assert MlflowClient(tracking_uri()).get_run(run.info.run_id).info.status == "FINISHED"


@pytest.mark.slow  # runs the train and export stages
def test_on_a_gpu_record_the_stage_trains_and_records_what_auto_measured_there(
    monkeypatch, tmp_path, repo_params, caplog
):
    """The train stage's GPU wiring, run on this CPU: the device record (stood in for: no GPU
    here) reaches auto, the winning recipe (float16 with XLA) reaches the GAN, and
    training.json, the MLflow run and the ONNX file say what trained the model."""
    import logging

    from dcgan.machine import devices
    from dcgan.pipeline import export, train
    from dcgan.shipping.sampling import load_session
    from dcgan.tracking.lineage import runs_for_file
    from dcgan.tracking.store import tracking_uri

    gpu = devices.record(["NVIDIA A100-SXM4-40GB"], "550.54.15", "12.5.1", "9")
    monkeypatch.setattr(devices, "describe", lambda strategy="default", listed="": dict(gpu))
    monkeypatch.setattr(precision, "measure", GpuTimer())
    cfg = auto_on_sample_data(repo_params, tmp_path)
    with caplog.at_level(logging.INFO, logger="dcgan.pipeline.train"):
        train.run(cfg, paths_of("train", tmp_path, data=tmp_path / "data"), progress=False)
    assert "training in mixed_float16 with XLA" in caplog.text
    paths = stage_paths("export", tmp_path)
    export.run(
        repo_params["export"],
        ExportPaths(generator=paths["generator"], training=paths["training"], out=paths["out"]),
    )

    training = json.loads((tmp_path / "models/training.json").read_text())
    assert (training["precision"], training["jit_compile"]) == ("mixed_float16", True)
    assert devices.of_record(training["environment"]) == gpu
    assert len(training["precision_measured"]["seconds_per_iteration"]) == 6
    assert "| NVIDIA A100-SXM4-40GB" in training["precision_measured"]["on"]
    meta = load_session(tmp_path / "models/generator.onnx").get_modelmeta().custom_metadata_map
    assert meta["trained_precision"] == "mixed_float16"
    assert {k: meta[f"env.{k}"] for k in gpu} == gpu  # the training's device, not export's
    (run,) = runs_for_file(tmp_path / "models/generator.onnx", tracking_uri())
    assert run.data.tags["precision"] == "mixed_float16"
    assert run.data.tags["jit_compile"] == "true"
    assert run.data.tags["env.device"] == "NVIDIA A100-SXM4-40GB"
    assert run.data.metrics["auto_mixed_float16_xla_s_per_iteration"] == 0.004
