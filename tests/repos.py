"""Copies of the tiny pipeline that conftest's ``built_tiny`` runs once per session.

`dvc repro` on the tiny config costs one TensorFlow process per stage (160 s on a 2-core AMD
EPYC with AVX2); the tests that need a built pipeline take a copy of it instead of building
their own. A copy is a whole folder (git, DVC's cache and run-cache, the
outputs, the MLflow store), so each test can rerun, kill or change it without touching others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sqlite3
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class BuiltPipeline:
    """The tiny pipeline after `dvc repro` (uncommitted, as a user's checkout after a run)."""

    repo: Path
    env: dict[str, str]  # the environment DVC ran in
    seconds: float  # the wall time of that `dvc repro`
    # Its CPU time and its stages', every core: what it costs whatever else shares the cores
    # (the build runs beside the first tests, so its wall time grows with theirs).
    cpu_seconds: float


def relocate_mlflow_store(db: Path, old: Path, new: Path) -> None:
    """Point a copied SQLite store at its own folder: MLflow records absolute artifact
    locations (``file://<repo>/mlruns/...``) in experiments, runs and logged models, so a copy
    would otherwise log its artifacts into the original's mlruns/."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:  # commit, then close
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in conn.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], column[2].upper()
                if "CHAR" in kind or "TEXT" in kind:
                    conn.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) '
                        f'WHERE "{name}" LIKE ?',
                        (str(old), str(new), f"%{old}%"),
                    )


def copy_built(built: BuiltPipeline, dest: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the built pipeline at ``dest`` (which must not exist), its MLflow store
    relocated; returns it and the environment to run DVC in."""
    shutil.copytree(built.repo, dest, symlinks=True)
    store = dest / "mlflow.db"
    if store.exists():
        relocate_mlflow_store(store, built.repo, dest)
    return dest, dict(built.env)
