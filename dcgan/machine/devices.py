"""The device on the record: ``cpu``, or the GPUs a run trains on with the driver, CUDA and
cuDNN behind them.

A run's ``env.*`` record (MLflow tags, training.json, the ONNX metadata) says which software
made a model; this module adds which hardware did. The same seed trains to different weights
on a CPU and a GPU (and on two kinds of CPU: docs/reliability.md), so the record must tell
them apart. On a CPU the record is one key, ``device: cpu``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from dcgan.config import listed_devices

DEVICE = "device"
CPU = "cpu"
# Every key this module may write; on a CPU only DEVICE.
KEYS = (DEVICE, "gpu_driver", "cuda", "cudnn")
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def record(
    gpus: Sequence[str], driver: str | None, cuda: str | None, cudnn: str | None
) -> dict[str, str]:
    """``{device: cpu}`` without GPUs; else ``{device: "2x NVIDIA A100-SXM4-40GB", gpu_driver,
    cuda, cudnn}`` (``unknown`` where a version cannot be read)."""
    if not gpus:
        return {DEVICE: CPU}
    models = ", ".join(f"{n}x {name}" if n > 1 else name for name, n in Counter(gpus).items())
    return {
        DEVICE: models,
        "gpu_driver": driver or "unknown",
        "cuda": cuda or "unknown",
        "cudnn": cudnn or "unknown",
    }


def driver_version(path: Path = NVIDIA_DRIVER) -> str | None:
    """The NVIDIA kernel driver's version (``550.54.15``), read from the file the driver
    itself provides, or None without one (no driver, or not Linux)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    return found.group(1) if found else None


def used_gpus(strategy: str, devices: str, visible: Sequence[str]) -> list[str]:
    """The GPUs (``GPU:0`` ...) that ``train.strategy`` and ``train.devices`` train on, out of
    the ``visible`` ones: as :func:`dcgan.gan.training.make_strategy` picks them. ``default``
    places the step on the first GPU; ``mirrored`` on the listed devices, else on every GPU."""
    if strategy != "mirrored":
        return list(visible[:1])
    listed = listed_devices(devices)
    return [d for d in listed if d.startswith("GPU:")] if listed else list(visible)


def describe(strategy: str = "default", devices: str = "") -> dict[str, str]:
    """This process's record (imports TensorFlow): the GPUs the run will use, by model name,
    with the driver and the CUDA and cuDNN versions TensorFlow was built against."""
    import tensorflow as tf

    physical = tf.config.list_physical_devices("GPU")
    names = {f"GPU:{i}": _model(tf, device) for i, device in enumerate(physical)}
    used = used_gpus(strategy, devices, list(names))
    if not used:
        return record([], None, None, None)
    build = tf.sysconfig.get_build_info()
    return record(
        [names.get(d, d) for d in used],
        driver_version(),
        build.get("cuda_version"),
        build.get("cudnn_version"),
    )


def _model(tf: ModuleType, device: Any) -> str:
    try:
        return tf.config.experimental.get_device_details(device).get("device_name") or device.name
    except (ValueError, RuntimeError):
        return device.name


def of_record(environment: Mapping[str, str]) -> dict[str, str]:
    """The device keys of an ``env`` record (empty for a record made before they existed)."""
    return {k: v for k, v in environment.items() if k in KEYS}
