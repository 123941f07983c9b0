"""``train.precision: auto``: mixed_bfloat16 where the CPU has AMX bfloat16 units, float32
elsewhere.

What the CPU has is what oneDNN, the library behind TensorFlow's CPU convolutions, says it
dispatches to: the ``isa`` line of its verbose report (``ONEDNN_VERBOSE=1``), printed once
per process at oneDNN's first primitive, so it is read from a short child process.

Why AMX and not any bfloat16: on an Intel Xeon whose oneDNN reports AMX, the bfloat16 step
ran 1.6x the float32 one (README, Performance); on one that reports "AVX-512 with float16,
Intel DL Boost and bfloat16 support" but no AMX, it ran at 0.60x, and a 2048^2 bfloat16
matmul at about half the float32 speed (0.49x-0.54x in two runs; AVX512-BF16's dot product
has no more throughput than float32 FMAs there). An AMD EPYC with AVX512-BF16 was reported
at 1.4x; auto gives it float32 (set ``mixed_bfloat16`` there by hand), because the ISA line
cannot tell the two apart.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

AUTO = "auto"
BFLOAT16 = "mixed_bfloat16"
FLOAT32 = "float32"

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


def amx_bfloat16(isa: str | None) -> bool:
    """Whether oneDNN's ISA includes AMX's bfloat16 tiles."""
    return isa is not None and "AMX" in isa and "bfloat16" in isa


def resolve(precision: str) -> tuple[str, str]:
    """The precision to train in, and why: ``auto`` asks oneDNN; anything else stays."""
    if precision != AUTO:
        return precision, "set in params.yaml"
    isa = onednn_isa()
    if amx_bfloat16(isa):
        return BFLOAT16, f"auto: oneDNN has AMX bfloat16 here ({isa})"
    return FLOAT32, f"auto: no AMX bfloat16 here (oneDNN: {isa or 'not in use'})"
