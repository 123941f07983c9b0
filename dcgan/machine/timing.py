"""How long a call takes, and on what: the median timer and the machine's name, which
``train.precision: auto`` and ``dcgan bench`` both report their figures with."""

from __future__ import annotations

import functools
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

_PROBE = "import tensorflow as tf; x = tf.ones((16, 16), tf.bfloat16); tf.matmul(x, x).numpy()"


@functools.cache
def onednn_isa() -> str | None:
    """oneDNN's own name for the instruction set it runs on this CPU, or None if TensorFlow
    does not use oneDNN here (e.g. TF_ENABLE_ONEDNN_OPTS=0, or not an x86 CPU)."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("onednn_verbose") and ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return None


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what the platform says elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_name() -> str:
    """This CPU, its core count and TensorFlow's version: what a timing depends on beyond
    the model."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tf_version = version("tensorflow")
    except PackageNotFoundError:
        tf_version = "unknown"
    return f"{cpu_name()} | {cores()} cores | tensorflow {tf_version}"


def median_seconds(
    fn: Callable[[], object], repeats: int, warmup: int = 2, stop_above: float = math.inf
) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn`` (each must wait for its result),
    after ``warmup`` untimed calls (tracing, caches). A call over ``stop_above`` seconds ends
    the timing there: the caller only needs to know it lost."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if times[-1] > stop_above:
            break
    return statistics.median(times)


def alternating_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median wall seconds of each of ``fns``, their calls taken in turn (a, b, a, b, ...):
    a machine whose speed drifts (a neighbour, the clock) then slows them alike, and their
    ratio holds where two blocks timed one after the other would not."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
