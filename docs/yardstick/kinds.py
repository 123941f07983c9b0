"""The layer kinds both profiles are broken down by, so that the two columns of
docs/performance.md add up the same way. No TensorFlow, no PyTorch: each profile script
imports this."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable

KINDS = (
    "G transposed conv, forward",
    "G transposed conv, backward",
    "D conv, forward",
    "D conv, backward",
    "Dense (matmul), forward",
    "Dense (matmul), backward",
    "BatchNorm, forward",
    "BatchNorm, backward",
    "activations, forward",
    "activations, backward",
    "Adam",
    "other (noise, gather, loss, moving statistics)",
)
ACTIVATIONS = ("LeakyRelu", "Tanh", "Sigmoid")


def tensorflow_kind(op_type: str, name: str) -> str:
    """The kind of one op of our compiled step, from its type and its name in the graph
    (Keras names ops after the layer that made them: deconv*, conv*, dense*, lrelu*, ...;
    the gradient's ops live under gradient_tape/, the optimizer's under adam/)."""
    backward = name.startswith("gradient_tape/")
    base = name.split("/", 1)[1] if backward else name
    base = re.sub(r"^(generator|discriminator)(_\d+)?/", "", base)
    way = "backward" if backward else "forward"
    if base.startswith("adam"):
        return "Adam"
    if base.startswith("deconv"):
        return f"G transposed conv, {way}"
    if base.startswith("conv"):
        return f"D conv, {way}"
    if base.startswith("dense"):
        return f"Dense (matmul), {way}"
    if "BatchNorm" in op_type or base.startswith(("bn", "FusedBatchNorm")):
        # the fused op's gradient has a type of its own
        return f"BatchNorm, {'backward' if 'Grad' in op_type else 'forward'}"
    if base.startswith(("lrelu", "tanh")) or op_type.removesuffix("Grad") in ACTIVATIONS:
        return f"activations, {'backward' if op_type.endswith('Grad') else way}"
    return "other (noise, gather, loss, moving statistics)"


# PyTorch's convolutions are told apart by their input's shape (batch, channels, h, w):
# G's (128, 64, 3, 3) transposed kernel and D's third kernel have the same shape.
TORCH_CONV_INPUTS = {
    (256, 7, 7): "G transposed conv",
    (128, 14, 14): "G transposed conv",
    (64, 14, 14): "G transposed conv",
    (1, 28, 28): "D conv",
    (32, 14, 14): "D conv",
    (64, 7, 7): "D conv",
}


def torch_kind(name: str, input_shapes: list, top_level: bool) -> str | None:
    """The kind of one PyTorch profiler event, or None where another event holds its time.

    Convolutions are counted where they compute (``aten::convolution`` and
    ``aten::convolution_backward``, at any depth); everything else where Python or the
    autograd engine called it (``top_level``): an op, an autograd node or an optimizer call.
    """
    if name in ("aten::convolution", "aten::convolution_backward"):
        x = input_shapes[0 if name == "aten::convolution" else 1]
        layer = TORCH_CONV_INPUTS.get(tuple(x[1:]))
        if layer is None:
            raise ValueError(f"a convolution of input {x} is not the book's DCGAN")
        return f"{layer}, {'forward' if name == 'aten::convolution' else 'backward'}"
    if not top_level or "onvolution" in name or name.startswith("aten::conv"):
        return None
    if name.startswith("Optimizer."):
        return "Adam"
    way = "backward" if "Backward" in name else "forward"
    if "batch_norm" in name or "BatchNorm" in name:
        return f"BatchNorm, {way}"
    if any(a.lower() in name.lower().replace("_", "") for a in ACTIVATIONS):
        return f"activations, {way}"
    if name in ("aten::linear", "aten::addmm") or "Addmm" in name or "MmBackward" in name:
        return f"Dense (matmul), {way}"
    return "other (noise, gather, loss, moving statistics)"


def median_seconds(iteration: Callable[[], object], iterations: int, warmup: int = 3) -> float:
    """Median wall seconds of one iteration (each call must wait for its result)."""
    for _ in range(warmup):
        iteration()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(versions: dict, seconds: float, ms: dict[str, float]) -> str:
    """The JSON both scripts print: versions, the step's time and its breakdown."""
    return json.dumps(
        {
            **versions,
            "s_per_iteration": seconds,
            "profiled_ms_per_iteration": ms,
            "profiled_total_ms": round(sum(ms.values()), 2),
        },
        indent=1,
    )
