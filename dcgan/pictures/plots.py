"""Pictures: sample grids (Pillow only, so the TensorFlow-free sampling CLI can use them)
and the loss/accuracy plot (matplotlib, imported when needed)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcgan.files import atomic_path

# The progress grid of each sample interval: the train stage writes them, the animation and
# the resume read them back; the one place the name is spelled.
GRID_FILE = re.compile(r"iter_(\d+)\.png")


def grid_path(folder: str | os.PathLike[str], iteration: int) -> Path:
    """``folder/iter_NNNNNN.png``: the grid of ``iteration`` (zero-padded, so names sort)."""
    return Path(folder) / f"iter_{iteration:06d}.png"


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float images (N, H, W[, 1]) -> uint8 (N, H, W), as the book's 0.5 * x + 0.5."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    return np.clip(np.rint((images * 0.5 + 0.5) * 255.0), 0, 255).astype(np.uint8)


def grid_image(images: np.ndarray, cols: int | None = None, scale: int = 4, pad: int = 2):
    """Tile (N, H, W[, 1]) images in [-1, 1] into one greyscale PIL image."""
    from PIL import Image

    tiles = to_uint8(images)
    n, h, w = tiles.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = tile
    img = Image.fromarray(canvas, mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return img


def save_grid(images: np.ndarray, path: str | os.PathLike[str], cols: int | None = None) -> Path:
    """Save a grid PNG atomically and return its path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        grid_image(images, cols=cols).save(tmp, format="PNG")
    return path


def save_by_class(
    images: np.ndarray, probs: np.ndarray, path: str | os.PathLike[str], per_class: int = 10
) -> Path:
    """A row per predicted digit 0-9: that class's most confident samples, best first.

    A row with fewer samples than ``per_class`` (a digit the generator rarely makes) is
    padded with black tiles, so mode collapse is visible at a glance.
    """
    labels, conf = np.argmax(probs, axis=1), np.max(probs, axis=1)
    h, w = images.shape[1:3]
    rows = np.full((10 * per_class, h, w, 1), -1.0, dtype=np.float32)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        best = idx[np.argsort(-conf[idx])][:per_class]
        rows[digit * per_class : digit * per_class + len(best)] = images[best].reshape(-1, h, w, 1)
    return save_grid(rows, path, cols=per_class)


def save_history_plot(
    iterations: Sequence[int],
    d_loss: Sequence[float],
    g_loss: Sequence[float],
    d_accuracy: Sequence[float],
    path: str | os.PathLike[str],
) -> Path:
    """Losses and discriminator accuracy against iteration, as the book plots them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax_loss.plot(iterations, d_loss, label="discriminator loss")
    ax_loss.plot(iterations, g_loss, label="generator loss")
    ax_loss.set_ylabel("binary cross-entropy")
    ax_loss.legend()
    ax_acc.plot(
        iterations, [100 * a for a in d_accuracy], label="discriminator accuracy", color="tab:green"
    )
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_xlabel("iteration")
    ax_acc.set_ylim(0, 105)  # headroom: D often sits at 100 %
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
