"""scripts/gpu_check.sh: on a machine without a GPU it says so in one line and exits 1; with
--allow-cpu it runs every check it would run on a GPU and writes the figures."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest

from dcgan.machine import gpu_check

from .conftest import ROOT, write_params


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@pytest.mark.slow  # the script starts a TensorFlow process
def test_without_a_gpu_the_script_says_so_in_one_line_and_exits_1(tmp_path):
    if _has_gpu():
        pytest.skip("this machine has a GPU: the no-GPU answer is checked on CPU-only machines")
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu_check.sh"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    ours = [line for line in done.stderr.splitlines() if line.startswith("gpu_check:")]
    assert ours == [gpu_check.NO_GPU]
    assert "no GPU found" in ours[0] and "DCGAN_EXTRAS=gpu" in ours[0]
    report = json.loads(out.read_text())
    assert report["gpu_found"] is False and report["ok"] is False
    assert report["environment"]["device"] == "cpu"


@pytest.mark.slow  # the GPU check for real: it times, repeats and exports each recipe
def test_on_the_cpu_it_times_repeats_and_exports_and_writes_the_figures(tmp_path, tiny_images):
    params = write_params(tmp_path / "params.yaml", train={"batch_size": 8})
    data = tmp_path / "prepared"
    data.mkdir()
    np.save(data / "x_train.npy", tiny_images)
    out = tmp_path / "report.json"
    argv = ["--allow-cpu", "--iterations", "4", "--params", str(params), "--data", str(data)]
    recipes = ["--recipes", "float32,float32+xla"]
    assert gpu_check.main([*argv, *recipes, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["gpu_found"] is False
    assert set(report["runs"]) == {"float32", "float32+xla"}
    for figures in report["runs"].values():
        assert figures["seconds_per_iteration"] > 0 and figures["finite"]
        assert len(figures["weights_sha256"]) == 64
    assert report["fastest"] in report["runs"]
    assert report["bitwise_repeat"] == dict.fromkeys({"float32", report["fastest"]}, True)
    assert report["onnx"]["onnx_within_tolerance"] is True
    assert report["onnx"]["onnx_max_abs_diff"] <= report["onnx"]["tolerance"]
    lock = hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    assert report["environment"]["uv_lock_sha256"] == lock  # the lock that installed it


def test_without_the_prepared_images_it_names_the_stage_to_run(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml")
    argv = ["--allow-cpu", "--params", str(params), "--data", str(tmp_path / "none")]
    assert gpu_check.main([*argv, "--out", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gpu_check: no {tmp_path / 'none' / 'x_train.npy'}; run `dvc repro prepare` first"
    ]
    assert not (tmp_path / "r.json").exists()  # nothing half-written
