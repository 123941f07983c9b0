"""What every stage, the saved models and the ONNX file agree on: the digits, the noise and
the generator's interface. NumPy only, so the TensorFlow-free sampling CLI can use it.

The noise width ``z_dim`` is not here: it is a parameter, and the generator carries it in
its input shape (``.keras`` and ONNX alike); read it from there.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

IMAGE_SHAPE = (28, 28, 1)  # MNIST digits, NHWC: height, width, one grey channel
NUM_CLASSES = 10  # the digits 0-9
PIXEL_RANGE = (-1.0, 1.0)  # images in the pipeline: uint8 x -> x / 127.5 - 1, as the book does

# The generator's ONNX signature: z float32 (N, z_dim) -> image float32 (N, 28, 28, 1).
INPUT_NAME = "z"
OUTPUT_NAME = "image"
BATCH_DIM = "batch"  # the name of the dynamic batch dimension
# ONNX metadata key: the SHA-256 of the .keras generator the file was exported from.
GENERATOR_SHA256 = "generator_sha256"
# The metric generators are ranked by (lower is better): its key in the evaluate stage's
# metrics, the registry's version tags, the page's card and the training curve.
FCD = "fcd"


def draw_noise(n: int, z_dim: int, seed: int) -> np.ndarray:
    """z ~ N(0, 1), float32 (n, z_dim), from a seeded NumPy generator: the progress grids'
    fixed batch, evaluation's samples, the export check and ``dcgan sample`` all draw here."""
    return np.random.default_rng(seed).standard_normal((n, z_dim)).astype(np.float32)


def noise_chunks(n: int, z_dim: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """The rows of ``draw_noise(n, z_dim, seed)``, ``chunk`` at a time: the same numbers
    (NumPy fills rows in order from one stream), in bounded memory."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        yield rng.standard_normal((min(chunk, n - start), z_dim)).astype(np.float32)
