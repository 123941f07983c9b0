"""Atomic writes: an output either appears whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dcgan.errors import DcganError


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the suffix, because some writers (Keras, ONNX tools) check it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file 0600; the output should have the mode any other write gives.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_leftovers(*paths: str | os.PathLike[str] | None) -> list[Path]:
    """Remove the temporary siblings that a killed writer of ``paths`` left behind: the names
    :func:`atomic_path`, :func:`atomic_dir` and dcgan.saving give them. Stages call it at
    start, so a SIGKILL mid-write costs disk space only until the next run. Returns them."""
    import glob

    removed = []
    for path in (Path(p) for p in paths if p is not None):
        if not path.parent.is_dir():
            continue
        stem, name = glob.escape(path.stem), glob.escape(path.name)
        patterns = [f".{stem}.*.tmp{glob.escape(path.suffix)}", f".{name}.*.tmp"]
        if path.suffix == ".keras":
            patterns.append(".keras-*")
        for pattern in patterns:
            for leftover in path.parent.glob(pattern):
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike[str], stage: str) -> Any:
    """Read a JSON file that ``stage`` writes, with a one-line error naming the stage to run
    when it is missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DcganError(f"{path} not found; run `dvc repro {stage}` first") from None
    except json.JSONDecodeError as exc:
        raise DcganError(f"{path} is not valid JSON ({exc}); run `dvc repro -f {stage}`") from None


# Zip entries carry a modification time; a fixed one (the earliest zip can store) makes an
# archive a function of its contents, so DVC sees an identical rerun as unchanged.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_zip(path: str | os.PathLike[str], entries: Mapping[str, bytes]) -> None:
    """Write an uncompressed zip of ``entries`` (name -> bytes, in that order), atomically and
    byte for byte the same for the same entries: fixed timestamps and permissions."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16  # -rw-r--r--, whatever the umask at write time
            zf.writestr(info, data)


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks (hashlib.file_digest)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (the content hash MLflow tags link artifacts by)."""
    return file_digest(path, "sha256")
