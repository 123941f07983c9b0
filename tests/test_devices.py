"""The device on the record: "cpu" here, and the GPUs, driver, CUDA and cuDNN elsewhere."""

from __future__ import annotations

import pytest

from dcgan.machine import devices, environment

A100 = "NVIDIA A100-SXM4-40GB"


def test_on_a_machine_without_a_gpu_the_record_says_cpu_and_nothing_else():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU; the cpu branch is checked on CPU-only machines")
    for strategy, listed in (("default", ""), ("mirrored", ""), ("mirrored", "CPU:0")):
        assert devices.describe(strategy, listed) == {"device": "cpu"}
    env = {**environment.describe(None), **devices.describe()}
    assert environment.summary(env).endswith(", device cpu")


def test_a_gpu_record_names_the_models_the_driver_cuda_and_cudnn():
    assert devices.record([A100], "550.54.15", "12.5.1", "9") == {
        "device": A100,
        "gpu_driver": "550.54.15",
        "cuda": "12.5.1",
        "cudnn": "9",
    }
    two = devices.record([A100, A100, "NVIDIA L4"], None, None, None)
    assert two["device"] == f"2x {A100}, NVIDIA L4"
    assert two["gpu_driver"] == two["cuda"] == two["cudnn"] == "unknown"
    assert devices.record([], "550.54.15", "12.5.1", "9") == {"device": "cpu"}


def test_the_gpus_used_follow_the_strategy():
    visible = ["GPU:0", "GPU:1"]
    assert devices.used_gpus("default", "", visible) == ["GPU:0"]
    assert devices.used_gpus("mirrored", "", visible) == visible
    assert devices.used_gpus("mirrored", "GPU:1", visible) == ["GPU:1"]
    assert devices.used_gpus("mirrored", "CPU:0,CPU:1", visible) == []
    assert devices.used_gpus("default", "", []) == []


def test_the_driver_version_is_read_from_the_drivers_own_file(tmp_path):
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )
    assert devices.driver_version(proc) == "550.54.15"
    proc.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release\n")
    assert devices.driver_version(proc) == "570.86.15"
    assert devices.driver_version(tmp_path / "absent") is None


def test_export_keeps_the_device_that_trained_not_its_own():
    trained = {"uv_lock_sha256": "ab", "python": "3.11.7", "device": A100, "cuda": "12.5.1"}
    assert devices.of_record(trained) == {"device": A100, "cuda": "12.5.1"}
    assert devices.of_record({"uv_lock_sha256": "ab"}) == {}  # a record made before devices
