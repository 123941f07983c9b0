"""How much memory a stage will need, estimated before TensorFlow allocates anything, so a
batch or a width that cannot fit is refused in one line with the estimate, instead of
ending in the allocator (or the kernel's OOM killer) minutes later.

The per-image and per-weight figures were measured as peak RSS on TensorFlow 2.21 / CPU
(train: +0.72 MB per image of batch_size, ~23 bytes per generator weight; classifier:
+0.34 MB per image of batch_size) and are rounded up here.
"""

from __future__ import annotations

import os

from dcgan.config import ClassifierConfig, EvaluateConfig, TrainConfig, params_error
from dcgan.contract import IMAGE_SHAPE
from dcgan.gan.architecture import discriminator_weights, generator_weights

GB = 1024**3
RUNTIME = 1.2 * GB  # TensorFlow, Keras and the process, before any model
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
FLOAT = 4


def available() -> int:
    """Bytes the kernel says a new allocation can get without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def train(cfg: TrainConfig, n_images: int) -> tuple[int, str]:
    """(bytes, the key that dominates) for the train stage."""
    generator = generator_weights(cfg.z_dim)  # z_dim x 12 544 of them in the first layer
    discriminator = discriminator_weights()
    # weights, Adam's two moments, gradients and temporaries: ~6 float copies per weight
    weights = 6 * FLOAT * (generator + discriminator)
    activations = int(0.8e6) * cfg.batch_size
    images = 2 * n_images * PIXELS * FLOAT  # the NumPy array and its copy on the device
    key = "train.z_dim" if weights > activations else "train.batch_size"
    return RUNTIME + weights + activations + images, key


def classifier(cfg: ClassifierConfig, n_images: int) -> tuple[int, str]:
    """(bytes, the key that dominates) for the classifier stage; Keras caps a batch at the
    data set's size."""
    batch = min(cfg.batch_size, n_images)
    return RUNTIME + int(0.4e6) * batch + 3 * n_images * PIXELS * FLOAT, "classifier.batch_size"


def evaluate(cfg: EvaluateConfig, n_train: int, n_test: int) -> tuple[int, str]:
    """(bytes, the key) for the evaluate stage: ONNX and Keras images, their float64
    difference, the classifier's outputs, the real images and one memorisation block."""
    per_sample = PIXELS * (2 * FLOAT + 3 * 8) + 2 * (10 + 128) * FLOAT
    real = (n_train + n_test) * PIXELS * FLOAT
    block = 3 * 1024 * n_train * FLOAT
    return RUNTIME + cfg.num_samples * per_sample + real + block, "evaluate.num_samples"


def check(estimate: tuple[int, str], stage: str) -> None:
    """Refuse, in one line naming the key, what would not fit in the memory available now."""
    needed, key = estimate
    free = available()
    if needed > free:
        raise params_error(
            f"the {stage} stage would need about {needed / GB:,.1f} GB of memory "
            f"and {free / GB:,.1f} GB are available; lower {key}"
        )
