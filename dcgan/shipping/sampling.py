"""Sampling from an exported generator with onnxruntime alone (never TensorFlow).

Kept free of TensorFlow imports on purpose: ``dcgan sample`` starts in well under two
seconds and runs where TensorFlow is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dcgan.contract import IMAGE_SHAPE, INPUT_NAME, OUTPUT_NAME
from dcgan.errors import DcganError


def load_session(path: str | os.PathLike[str], threads: int = 0):
    """An onnxruntime session for a generator file, with a one-line error for a bad file."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DcganError(f"{path} not found; run `dvc repro export` (or pass --model)")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # 0: one per physical core
    options.log_severity_level = 3  # errors only; a bad file is reported by us, on one line
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises several private exception types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DcganError(
            f"{path} is not a loadable ONNX model ({first}); re-export it with `dvc repro export`"
        ) from None
    names = [i.name for i in session.get_inputs()]
    if names != [INPUT_NAME]:
        raise DcganError(
            f"{path} has inputs {names}, not the generator's single input "
            f"'{INPUT_NAME}'; pass a generator exported by `dvc repro export`"
        )
    return session


def z_dim_of(session) -> int:
    """The noise width, from the model's own input signature (z: float32 [batch, z_dim])."""
    width = session.get_inputs()[0].shape[1]
    if not isinstance(width, int):
        raise DcganError(
            f"the model's input {INPUT_NAME} has no fixed width ({width!r}); "
            "pass a generator exported by `dvc repro export`"
        )
    return width


def generate(session, z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Images (N, 28, 28, 1) in [-1, 1] for noise ``z`` (N, z_dim)."""
    z = np.asarray(z)
    expected = z_dim_of(session)
    if z.ndim != 2 or z.shape[1] != expected:
        raise DcganError(
            f"z has shape {z.shape} but the model takes (N, {expected}); "
            f"draw z with width {expected}"
        )
    z = z.astype(np.float32, copy=False)
    out = [
        session.run([OUTPUT_NAME], {INPUT_NAME: z[i : i + batch_size]})[0]
        for i in range(0, len(z), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, *IMAGE_SHAPE), np.float32)
