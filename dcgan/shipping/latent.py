"""Walks through the generator's latent space: spherical interpolation between noise vectors.

z ~ N(0, 1) in many dimensions lies near a sphere of radius sqrt(z_dim); a straight line
between two draws cuts inside it, through points the generator rarely saw (White, 2016,
"Sampling Generative Networks"). Spherical interpolation keeps to the shell. The page in
``web/`` walks the same way.
"""

from __future__ import annotations

import numpy as np


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Row-wise spherical interpolation from ``a`` (t=0) to ``b`` (t=1), both (N, z_dim).

    At t=0 and t=1 the weights are exactly 1 and 0, so a walk's ends are its endpoints to the
    bit; nearly parallel rows fall back to a straight line."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    cos = np.clip(np.sum(a64 * b64, axis=1) / np.where(norms > 0, norms, 1.0), -1.0, 1.0)
    omega = np.arccos(cos)[:, None]
    sin = np.sin(omega)
    parallel = sin < 1e-6
    safe = np.where(parallel, 1.0, sin)
    wa = np.where(parallel, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    wb = np.where(parallel, t, np.sin(t * omega) / safe)
    return (wa * a64 + wb * b64).astype(np.float32)


def walks(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """(N * steps, z_dim): for each row i, ``steps`` points from start[i] to end[i], walk by
    walk (row-major, so a grid with ``steps`` columns shows one walk per row)."""
    if steps < 2:
        raise ValueError(f"a walk needs at least 2 steps, got {steps}")
    points = np.stack([slerp(start, end, t) for t in np.linspace(0.0, 1.0, steps)], axis=1)
    return points.reshape(-1, start.shape[1])
