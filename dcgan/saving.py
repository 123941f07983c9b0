"""Keras models to and from .keras files: deterministic bytes on save, safe mode on load."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import keras

from dcgan.errors import DcganError
from dcgan.files import write_zip


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """``model.save(path)``, atomically, and the same bytes for the same model.

    Keras writes three things into a .keras file that depend on the moment and the process,
    not the model: ``date_saved`` in metadata.json, the zip entry time of the weights, and
    in config.json the ``shared_object_id`` of shared objects (the dtype policy), which is
    Python's ``id()``, a memory address. The first two are dropped and the ids numbered in
    order of appearance (all loading needs is that equal ids mean one object). The weights
    file itself, HDF5, is already a function of the weights.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(path).parent, prefix=".keras-") as tmp:
        plain = Path(tmp) / "model.keras"
        model.save(plain)
        with zipfile.ZipFile(plain) as zf:
            entries = {name: zf.read(name) for name in zf.namelist()}
    metadata = json.loads(entries["metadata.json"])
    metadata.pop("date_saved", None)
    entries["metadata.json"] = json.dumps(metadata).encode()
    entries["config.json"] = json.dumps(
        _number_shared_objects(json.loads(entries["config.json"]))
    ).encode()
    write_zip(path, entries)


def _number_shared_objects(config: Any) -> Any:
    """Replace every ``shared_object_id`` by 0, 1, 2, ... in order of first appearance."""
    numbers: dict[Any, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: numbers.setdefault(v, len(numbers)) if k == "shared_object_id" else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(config)


def load_model(path: str | os.PathLike[str], stage: str) -> keras.Model:
    """Load a saved .keras model with ``safe_mode=True`` (no arbitrary code from Lambda layers).
    ``stage`` is the DVC stage that writes the file: the error messages say to run it."""
    if not Path(path).is_file():  # Keras 3 reports a missing file as a ValueError
        raise DcganError(f"{path} not found; run `dvc repro {stage}` first")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except FileNotFoundError:
        raise DcganError(f"{path} not found; run `dvc repro {stage}` first") from None
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DcganError(
            f"{path} cannot be loaded safely ({first}); re-create it with `dvc repro {stage}`"
        ) from None
