"""The prepare stage: the bundled sample, the .npz source, and bad sources."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dcgan.config import PrepareConfig
from dcgan.data import load_prepared
from dcgan.errors import DcganError
from dcgan.pipeline import prepare
from dcgan.pipeline.paths import PreparePaths
from dcgan.sources import stratified_split

from .conftest import ROOT, write_params


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "prepared"
    meta = prepare.run(PrepareConfig(source="sample", test_fraction=0.2, seed=0), PreparePaths(out))
    return out, meta


def test_sample_is_normalised_and_balanced(prepared):
    out, meta = prepared
    data = load_prepared(out)
    assert data.x_train.shape == (4000, 28, 28, 1) and data.x_test.shape == (1000, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == -1.0 and data.x_train.max() == 1.0
    # x / 127.5 - 1 maps the 256 grey levels onto a grid of step 1/127.5.
    levels = (data.x_train + 1.0) * 127.5
    assert np.allclose(levels, np.rint(levels), atol=1e-4)
    assert np.bincount(data.y_train).tolist() == [400] * 10
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert meta["source"] == "sample" and len(meta["sha256"]) == 64
    assert json.loads((out / "meta.json").read_text())["train_class_counts"] == [400] * 10


def test_split_is_deterministic_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    a_train, a_test = stratified_split(labels, 0.2, seed=3)
    b_train, b_test = stratified_split(labels, 0.2, seed=3)
    _, c_test = stratified_split(labels, 0.2, seed=4)
    assert np.array_equal(a_test, b_test) and np.array_equal(a_train, b_train)
    assert not np.array_equal(a_test, c_test)
    assert set(a_train).isdisjoint(a_test) and len(a_train) + len(a_test) == 500


def make_npz(path, n_train=12, n_test=6, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_source_round_trip(tmp_path):
    src = make_npz(tmp_path / "mnist.npz")
    prepare.run(
        PrepareConfig(source=str(src), test_fraction=0.2, seed=0), PreparePaths(tmp_path / "out")
    )
    data = load_prepared(tmp_path / "out")
    with np.load(src) as raw:
        assert np.allclose(data.x_train[..., 0], raw["x_train"] / 127.5 - 1.0, atol=1e-6)
        assert np.array_equal(data.y_test, raw["y_test"])
    assert data.meta["train_count"] == 12 and data.meta["test_count"] == 6


BAD_NPZ = {
    "missing array": ({"y_test": None}, "has no array y_test"),
    "wrong shape": (
        {"x_train": np.zeros((4, 32, 32), np.uint8)},
        r"x_train has shape \(4, 32, 32\)",
    ),
    "wrong dtype": ({"x_train": np.array([["a"] * 784] * 12)}, "x_train has dtype"),
    "nan values": ({"x_test": np.full((6, 28, 28), np.nan)}, "x_test contains NaN or infinite"),
    "out of range": ({"x_test": np.full((6, 28, 28), 300.0)}, r"x_test has values in \[300"),
    "empty split": (
        {"x_test": np.zeros((0, 28, 28), np.uint8), "y_test": np.zeros(0, np.uint8)},
        "x_test is empty",
    ),
    "label count": (
        {"y_train": np.zeros(5, np.uint8)},
        r"y_train has shape \(5,\); expected \(12,\)",
    ),
    "bad labels": ({"y_train": np.full(12, 11)}, "y_train has labels outside 0-9"),
}


@pytest.mark.parametrize("case", BAD_NPZ, ids=list(BAD_NPZ))
def test_bad_npz_is_refused_and_nothing_is_written(tmp_path, case):
    overrides, message = BAD_NPZ[case]
    src = make_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DcganError, match=message):
        prepare.run(
            PrepareConfig(source=str(src), test_fraction=0.2, seed=0),
            PreparePaths(tmp_path / "out"),
        )
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary folder left behind


def test_truncated_npz(tmp_path):
    src = make_npz(tmp_path / "mnist.npz")
    src.write_bytes(src.read_bytes()[:3000])
    with pytest.raises(DcganError, match="is not a readable .npz"):
        prepare.run(
            PrepareConfig(source=str(src), test_fraction=0.2, seed=0),
            PreparePaths(tmp_path / "out"),
        )


def test_unknown_source(tmp_path):
    with pytest.raises(DcganError, match="neither 'mnist', 'sample', 'keras' nor an existing"):
        prepare.run(
            PrepareConfig(source="mnst", test_fraction=0.2, seed=0), PreparePaths(tmp_path / "out")
        )


def test_keras_source_offline_names_the_offline_sources(tmp_path, monkeypatch):
    import keras

    def offline():
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: "
            "[Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DcganError) as info:
        prepare.run(
            PrepareConfig(source="keras", test_fraction=0.2, seed=0), PreparePaths(tmp_path / "out")
        )
    message = str(info.value)
    assert "download" in message and "failed" in message
    assert "sample" in message and ".npz" in message and "\n" not in message


def test_prepare_cli_bad_source_exit_2(tmp_path):
    params = write_params(tmp_path / "params.yaml", prepare={"source": "nowhere.npz"})
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/prepare.py"),
            "--params",
            str(params),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {params}: prepare.source is 'nowhere.npz', which is neither 'mnist', "
        "'sample', 'keras' nor an existing .npz file; set it to one of those"
    ]
    assert not (tmp_path / "out").exists()
