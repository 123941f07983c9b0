"""The prepared data: the one format every stage after ``prepare`` reads.

Layout (``out_dir``): ``x_train.npy`` / ``x_test.npy`` float32 (N, 28, 28, 1) in [-1, 1]
(x / 127.5 - 1, as in the book), ``y_train.npy`` / ``y_test.npy`` int64 (N,), and
``meta.json`` describing the source, counts and the SHA-256 of the raw input. The sources
that feed it are dcgan.sources.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dcgan.contract import IMAGE_SHAPE, NUM_CLASSES, PIXEL_RANGE
from dcgan.errors import DcganError
from dcgan.files import atomic_dir, write_json

SPLITS = ("train", "test")


@dataclass(frozen=True)
class RawMnist:
    """Raw digits, uint8 (N, 28, 28), labels int64 (N,), and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str
    sha256: str  # of the raw input; for several files, of their names and SHA-256 sums
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> md5, sha256, bytes
    source: str = ""  # prepare.source (dcgan.sources.load_source names it)


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [-1, 1]: x / 127.5 - 1, as the book does."""
    return (images.astype(np.float32) / 127.5 - 1.0)[..., np.newaxis]


def write_prepared(
    raw: RawMnist, out_dir: str | os.PathLike[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Write the normalised splits and meta.json into ``out_dir`` (replaced atomically)."""
    meta: dict[str, Any] = {
        "source": raw.source,
        "description": raw.description,
        "sha256": raw.sha256,
        "files": raw.files,
        "normalisation": "x / 127.5 - 1 (uint8 pixels to float32 in [-1, 1])",
        "image_shape": list(IMAGE_SHAPE),
        "params": params,
    }
    with atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
            np.save(tmp / f"x_{split}.npy", normalise(x))
            np.save(tmp / f"y_{split}.npy", y)
            meta[f"{split}_count"] = int(len(y))
            meta[f"{split}_class_counts"] = np.bincount(y, minlength=NUM_CLASSES).tolist()
        write_json(tmp / "meta.json", meta)
    return meta


@dataclass(frozen=True)
class Prepared:
    """The prepare stage's output, read back."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict[str, Any]


def require_prepared(data_dir: str | os.PathLike[str]) -> None:
    """Refuse a folder the prepare stage has not written, saying to run it (cheap: a stage
    calls it before TensorFlow loads)."""
    if not (Path(data_dir) / "meta.json").is_file():
        raise DcganError(f"{data_dir} holds no prepared data; run `dvc repro prepare` first")


def load_prepared(data_dir: str | os.PathLike[str]) -> Prepared:
    """Read what :func:`write_prepared` wrote; a missing folder says to run the prepare stage."""
    data_dir = Path(data_dir)
    require_prepared(data_dir)
    arrays = {}
    for split in SPLITS:
        for kind in ("x", "y"):
            arrays[f"{kind}_{split}"] = np.load(
                data_dir / f"{kind}_{split}.npy", allow_pickle=False
            )
        _check_split(data_dir, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    return Prepared(**arrays, meta=json.loads((data_dir / "meta.json").read_text()))


def _check_split(data_dir: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse, in one line, prepared data that is not what write_prepared writes: a NaN or
    an out-of-range pixel trains a NaN generator without a word otherwise."""
    redo = "run `dvc repro -f prepare` to write it again"
    where = f"{data_dir}: x_{split}.npy"
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE or len(x) == 0:
        raise DcganError(
            f"{where} holds {x.dtype} {x.shape}, not float32 (N, 28, 28, 1) images; {redo}"
        )
    if not np.isfinite(x).all():
        raise DcganError(f"{where} holds NaN or infinite pixels; {redo}")
    low, high = PIXEL_RANGE
    if x.min() < low or x.max() > high:
        raise DcganError(
            f"{where} holds pixels in [{x.min():.3g}, {x.max():.3g}], outside "
            f"[{low:g}, {high:g}]; {redo}"
        )
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DcganError(f"{data_dir}: y_{split}.npy does not label x_{split}.npy; {redo}")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise DcganError(f"{data_dir}: y_{split}.npy has labels outside 0-9; {redo}")
