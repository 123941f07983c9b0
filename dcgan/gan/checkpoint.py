"""Training checkpoints that resume to the bit: every variable that the next iteration reads.

A checkpoint folder holds ``state.npz`` (both models' weights including BatchNorm statistics,
both optimizers' variables including their step counters, and the state of the step's
random generator), ``state.json`` (iteration, history, quality scores, MLflow run id, and a
fingerprint of the params and data that made it) and ``samples/`` (the progress grids so far,
which DVC deletes with the stage's other outputs before a rerun). The folder is replaced atomically.

A checkpoint is scratch for a crashed run, not a pipeline output: DVC does not track it
(a tracked, persistent output would switch off DVC's run-cache for the train stage), and
the train stage discards it once its outputs are written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan.files import atomic_dir, write_zip

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: no 'complete' marker; finished runs discard their checkpoint


def fingerprint(params: Mapping[str, Any]) -> str:
    """A stable hash of what defines a training run (params and data checksum)."""
    blob = json.dumps(dict(params), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass
class Resumed:
    """What a checkpoint hands back to the training loop."""

    iteration: int
    history: list[dict[str, float]]
    run_id: str | None
    quality: list[dict[str, float]]  # the probe's scores so far (empty without one)


def save(
    folder: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    iteration: int,
    history: list[dict[str, float]],
    run_id: str | None,
    fingerprint: str,
    samples_dir: str | os.PathLike[str] | None = None,
    quality: list[dict[str, float]] | None = None,
) -> None:
    """Write a checkpoint of ``variables`` (name -> variable with .numpy()) atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        write_zip(tmp / "state.npz", {f"{name}.npy": _npy(v) for name, v in variables.items()})
        state = {
            "format": FORMAT_VERSION,
            "iteration": iteration,
            "fingerprint": fingerprint,
            "run_id": run_id,
            "history": history,
            "quality": quality or [],
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        if samples_dir is not None and Path(samples_dir).is_dir():
            shutil.copytree(samples_dir, tmp / "samples")


def _npy(variable: Any) -> bytes:
    """One array in .npy format, as np.savez would store it (np.savez stamps the zip entries
    with the time of writing; dcgan.files.write_zip does not)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(variable.numpy()), allow_pickle=False)
    return buffer.getvalue()


def discard(folder: str | os.PathLike[str]) -> None:
    """Remove a checkpoint once the run it belongs to has written its outputs."""
    shutil.rmtree(folder, ignore_errors=True)


def restore(
    folder: str | os.PathLike[str],
    variables: Mapping[str, Any],
    expected: str,
    samples_dir: str | os.PathLike[str] | None = None,
) -> Resumed | None:
    """Load a checkpoint made with the same fingerprint into ``variables``; None otherwise."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable checkpoint %s (%s); training from scratch", folder, exc)
        return None
    if state.get("format") != FORMAT_VERSION or state.get("fingerprint") != expected:
        log.info(
            "ignoring checkpoint %s: it was made by other params or data; training from scratch",
            folder,
        )
        return None
    try:
        with np.load(folder / "state.npz", allow_pickle=False) as saved:
            if set(saved.files) != set(variables):
                raise ValueError("its variables do not match the model")
            for name, var in variables.items():
                value = saved[name]
                if tuple(value.shape) != tuple(var.shape):
                    raise ValueError(f"{name} has shape {value.shape}, expected {var.shape}")
            for name, var in variables.items():
                var.assign(saved[name])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring checkpoint %s (%s); training from scratch", folder, exc)
        return None
    if samples_dir is not None and (folder / "samples").is_dir():
        Path(samples_dir).mkdir(parents=True, exist_ok=True)
        for png in (folder / "samples").glob("*.png"):
            shutil.copy2(png, Path(samples_dir) / png.name)
    log.info("resuming from checkpoint %s at iteration %d", folder, state["iteration"])
    return Resumed(
        iteration=int(state["iteration"]),
        history=state["history"],
        run_id=state.get("run_id"),
        quality=state.get("quality", []),
    )
