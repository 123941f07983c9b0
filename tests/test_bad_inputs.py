"""More of the bad-input table: unsafe model files, a full disk, missing artifacts for a stage."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from dcgan.config import PrepareConfig
from dcgan.errors import DcganError, run_main
from dcgan.pipeline.paths import PreparePaths

from .conftest import ROOT, paths_of, run_without_tensorflow, stage_command, stage_paths


def test_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    import keras

    from dcgan.saving import load_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "generator.keras"
    model.save(path)
    with pytest.raises(DcganError, match="cannot be loaded safely"):
        load_model(path, "train")


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from dcgan import data
    from dcgan.pipeline import prepare

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x_train.npy"))

    monkeypatch.setattr(data.np, "save", full)
    code = run_main(
        lambda: prepare.run(PrepareConfig("sample", 0.2, 0), PreparePaths(tmp_path / "out"))
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "No space left on device" in err[0] and "free space" in err[0]
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary folder


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "not found; run `dvc repro train` first"),
        (
            "{",
            "is not valid JSON (Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1)); run `dvc repro -f train`",
        ),
    ],
    ids=["missing", "broken"],
)
def test_export_refuses_a_missing_or_broken_training_record_before_tensorflow(
    tmp_path, content, problem
):
    record = tmp_path / "models" / "training.json"
    if content is not None:
        record.parent.mkdir()
        record.write_text(content)
    before = sorted(tmp_path.rglob("*"))
    command = stage_command("export", tmp_path, params=ROOT / "params.yaml", training=record)
    proc = run_without_tensorflow(command, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {record} {problem}"]
    assert sorted(tmp_path.rglob("*")) == before  # no ONNX file, no temporary one


def test_train_refuses_a_folder_without_prepared_data_before_tensorflow(tmp_path):
    data = tmp_path / "nowhere"
    command = stage_command("train", tmp_path, params=ROOT / "params.yaml", data=data)
    proc = run_without_tensorflow(command, tmp_path)
    assert proc.returncode == 2, proc.stderr
    problem = "holds no prepared data; run `dvc repro prepare` first"
    assert proc.stderr.strip().splitlines() == [f"error: {data} {problem}"]
    assert list(tmp_path.iterdir()) == []  # no MLflow store, no output folder


@pytest.mark.slow  # starts a TensorFlow process per stage
@pytest.mark.parametrize(
    ("stage", "args", "message"),
    [
        (
            "export",
            {"training": "nowhere/training.json"},
            "training.json not found; run `dvc repro train`",
        ),
        ("evaluate", {"onnx": "nowhere.onnx"}, "nowhere.onnx not found"),
    ],
)
def test_stage_without_its_inputs(tmp_path, stage, args, message):
    env_uri = f"sqlite:///{tmp_path / 'm.db'}"
    # dvc.yaml's command with its paths under tmp_path, one input pointing nowhere.
    command = stage_command(stage, tmp_path, params=ROOT / "params.yaml", **args)
    proc = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": env_uri},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]


def test_generator_whose_z_dim_disagrees_with_the_onnx_file(tmp_path):
    import onnx

    from dcgan.config import EvaluateConfig
    from dcgan.gan.models import build_generator
    from dcgan.pipeline import evaluate
    from dcgan.shipping.export import generator_to_onnx

    onnx.save(generator_to_onnx(build_generator(64), opset=17), str(tmp_path / "g.onnx"))
    build_generator(100).save(tmp_path / "generator.keras")
    with pytest.raises(DcganError, match="takes z of width 100 but .* takes 64"):
        evaluate.run(
            EvaluateConfig(10, 0, 1e-4, "dcgan-generator"),
            paths_of(
                "evaluate",
                tmp_path,
                onnx=tmp_path / "g.onnx",
                generator=tmp_path / "generator.keras",
                classifier=tmp_path / "mnist_classifier.keras",
                data=tmp_path,
            ),
        )
    assert not (tmp_path / "metrics.json").exists()
    assert not stage_paths("evaluate", tmp_path)["metrics"].exists()
