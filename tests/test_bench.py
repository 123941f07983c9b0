"""The benchmark compares against a book-style loop that really trains D (Keras 3 pitfall)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


def test_book_loop_trains_d_in_its_own_step_and_freezes_it_in_the_combined_step(
    tiny_train_cfg, tiny_images
):
    from dcgan.machine.bench import book_loop

    iteration, g, d, combined = book_loop(tiny_train_cfg, tiny_images)
    kernel, g_kernel = d.get_layer("conv1").kernel, g.get_layer("deconv1").kernel
    before, g_before = kernel.numpy().copy(), g_kernel.numpy().copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        iteration()
    # Keras's "no trainable weights" for the frozen D would be false here: it trains.
    assert not [w for w in caught if "trainable weights" in str(w.message)]
    assert not np.array_equal(before, kernel.numpy())  # D trained
    assert not np.array_equal(g_before, g_kernel.numpy())  # G trained
    frozen = kernel.numpy().copy()
    z = np.zeros((4, tiny_train_cfg.z_dim), np.float32)
    combined.train_on_batch(z, np.ones((4, 1), np.float32))
    assert np.array_equal(frozen, kernel.numpy())  # the G step leaves D alone


def test_format_table_lists_every_batch():
    from dcgan.machine.bench import format_table

    row = {
        "onnxruntime_ms": 1.0,
        "onnxruntime_tf2onnx_graph_ms": 3.0,
        "tensorflow_ms": 2.0,
        "ort_speedup_vs_tf": 2.0,
    }
    report = {
        "machine": {"cpu": "cpu", "cores": 2, "tensorflow": "2", "onnxruntime": "1"},
        "training": {
            "ours_s_per_iteration": 0.1,
            "book_s_per_iteration": 0.3,
            "book_without_unused_predict_s_per_iteration": 0.25,
            "speedup_vs_book_without_unused_predict": 2.5,
            "ours_images_per_s": 2560,
            "batch_size": 128,
            "speedup_vs_book": 3.0,
            "ours_mixed_bfloat16_s_per_iteration": 0.05,
            "mixed_bfloat16_speedup_vs_book": 6.0,
            "gflop_per_iteration": 35.0,
            "ours_gflop_per_s": 350.0,
            "matmul_float32_gflop_per_s": 400.0,
            "matmul_bfloat16_gflop_per_s": 1600.0,
            "ours_mixed_bfloat16_gflop_per_s": 700.0,
            "bfloat16_speedup_vs_float32": 2.0,
            "auto_precision": "mixed_bfloat16",
            "float32_ceiling_speedup_vs_book": 3.4,
            "peak_rss_mb": 900.0,
            "book_loop_trains_d": True,
            "ema_plain_s_per_iteration": 0.2,
            "ema_s_per_iteration": 0.203,
            "ema_update_cost": 0.015,
            "determinism": {
                "settings": {"op_determinism": True, "constant_folding": False, "remapping": False},
                "variants": {
                    "TensorFlow's defaults": {
                        "op_determinism": False,
                        "constant_folding": True,
                        "remapping": True,
                        "s_per_iteration": 0.095,
                        "slowdown_vs_project": 0.95,
                    }
                },
            },
        },
        "inference": {"rows": [{"batch": b, **row} for b in (1, 64, 1024)]},
        "sample_cli": {"wall_s": 0.3, "tensorflow_imported": False},
    }
    table = format_table(report)
    assert "3.00x" in table and "batch  1024" in table and "TensorFlow imported: False" in table
    assert "averaged generator (train.ema_decay): +1.5 % per step (0.203 s against 0.200 s" in table
    assert "bfloat16 step 700 GFLOP/s = 44 % of its matmul; bfloat16/float32 2.00x" in table
    assert "ran with op determinism on, constant folding off, remapping off (bit-identical" in table
    assert "TensorFlow's defaults:" in table and "0.095 s/iteration (0.95x the project's)" in table


@pytest.mark.slow  # the whole training benchmark, at a tiny size
def test_bench_training_runs_and_reports(tiny_train_cfg):
    from dcgan.machine.bench import bench_training

    report = bench_training(tiny_train_cfg, iterations=1)
    assert report["book_loop_trains_d"] is True
    assert report["trace_count"] == 1
    assert report["gflop_per_iteration"] > 0
    assert report["bfloat16_speedup_vs_float32"] > 0
    assert report["auto_precision"] in ("float32", "mixed_bfloat16")
    for key in (
        "ours_s_per_iteration",
        "ours_mixed_bfloat16_s_per_iteration",
        "book_s_per_iteration",
        "book_without_unused_predict_s_per_iteration",
        "ema_s_per_iteration",
        "ema_plain_s_per_iteration",
    ):
        assert report[key] > 0
    ema = report["ema_s_per_iteration"] / report["ema_plain_s_per_iteration"] - 1
    assert report["ema_update_cost"] == pytest.approx(ema)
    # The settings the step ran with are the ones every training stage sets, and the bench
    # leaves them so: a later GAN in the same process trains the same bits.
    from dcgan.machine.determinism_cost import VARIANTS, current

    project = {"op_determinism": True, "constant_folding": False, "remapping": False}
    determinism = report["determinism"]
    assert determinism["settings"] == project
    assert set(determinism["variants"]) == {"the project's", *VARIANTS}
    assert {k: determinism["variants"]["the project's"][k] for k in project} == project
    assert all(row["s_per_iteration"] > 0 for row in determinism["variants"].values())
    assert current().__dict__ == project


def test_the_flop_count_logs_no_tensorflow_deprecation(tiny_train_cfg, tiny_images, caplog):
    """`dcgan bench` counts FLOPs with TensorFlow's v1 profiler, which logs a deprecation
    warning about its own insides: the user sees the count, not the warning."""
    import logging

    from dcgan.gan.training import GAN
    from dcgan.machine.bench import step_flops

    gan = GAN(tiny_train_cfg, tiny_images)
    with caplog.at_level(logging.INFO, logger="tensorflow"):
        flops = step_flops(gan)
        assert logging.getLogger("tensorflow").level == logging.INFO  # put back as it was
    assert flops > 0
    assert not [r for r in caplog.records if r.name.startswith("tensorflow")]


@pytest.mark.slow  # the inference benchmark, at a tiny size
def test_bench_inference_compares_the_shipped_graph_tf2onnx_graph_and_tensorflow(repo_params):
    from dcgan.machine.bench import bench_inference

    report = bench_inference(None, None, repo_params["train"], repo_params["export"], (1, 3))
    assert "rewritten" in report["graph"]
    assert [row["batch"] for row in report["rows"]] == [1, 3]
    for row in report["rows"]:
        for key in ("onnxruntime_ms", "onnxruntime_tf2onnx_graph_ms", "tensorflow_ms"):
            assert row[key] > 0
        assert row["ort_speedup_vs_tf"] == pytest.approx(
            row["tensorflow_ms"] / row["onnxruntime_ms"]
        )


@pytest.mark.slow  # the inference benchmark, at a tiny size
def test_bench_inference_takes_any_exported_generator(repo_params, tmp_path):
    """A generator trained with another z_dim (64) is timed with noise of its own width."""
    import dataclasses

    import onnx

    from dcgan.gan.models import build_generator
    from dcgan.machine.bench import bench_inference
    from dcgan.saving import save_model
    from dcgan.shipping.export import generator_to_onnx

    generator = build_generator(64)
    save_model(generator, tmp_path / "g.keras")
    onnx.save(generator_to_onnx(generator, 13), str(tmp_path / "g.onnx"))
    export = dataclasses.replace(repo_params["export"], opset=13)
    report = bench_inference(
        tmp_path / "g.onnx", tmp_path / "g.keras", repo_params["train"], export, (2,)
    )
    assert report["z_dim"] == 64 and report["model"] == str(tmp_path / "g.onnx")
    assert report["rows"][0]["batch"] == 2 and report["rows"][0]["onnxruntime_ms"] > 0


def test_bench_inference_without_the_keras_generator_is_one_line(repo_params, tmp_path):
    from dcgan.errors import DcganError
    from dcgan.machine.bench import bench_inference

    (tmp_path / "g.onnx").write_bytes(b"x")
    with pytest.raises(DcganError, match="needs the Keras generator it was exported from"):
        bench_inference(
            tmp_path / "g.onnx", tmp_path / "no.keras", repo_params["train"], repo_params["export"]
        )


@pytest.mark.parametrize(("unused_predict", "expected"), [(True, 2), (False, 1)])
def test_book_loop_calls_predict_as_printed(tiny_train_cfg, tiny_images, unused_predict, expected):
    """The book calls generator.predict twice per iteration (the second result is unused)."""
    from dcgan.machine.bench import book_loop

    iteration, g, _, _ = book_loop(tiny_train_cfg, tiny_images, unused_predict=unused_predict)
    calls, predict = [], g.predict

    def counting_predict(x, **kwargs):
        calls.append(x.dtype)
        return predict(x, **kwargs)

    g.predict = counting_predict
    iteration()
    assert len(calls) == expected
    assert all(dtype == np.float64 for dtype in calls)  # the book's NumPy noise is float64


def test_alternating_medians_take_the_calls_in_turn_after_the_warm_up():
    from dcgan.machine.timing import alternating_medians

    calls: list[str] = []
    medians = alternating_medians(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1
    )
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]  # a's and b's warm-up, then in turn
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())
