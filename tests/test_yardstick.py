"""docs/yardstick: the layer kinds that the PyTorch and TensorFlow profiles of
docs/performance.md are both broken down by."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BACKWARD = "aten::convolution_backward"
NODE = "autograd::engine::evaluate_function: "  # an autograd node, as profiled
KINDS_FILE = Path(__file__).resolve().parents[1] / "docs" / "yardstick" / "kinds.py"


@pytest.fixture(scope="module")
def kinds():
    spec = importlib.util.spec_from_file_location("yardstick_kinds", KINDS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_op_of_our_step_falls_in_its_layers_kind(kinds, tiny_train_cfg, tiny_images):
    """The step's real graph: each convolution is G's or D's, forward or backward as its
    place says; BatchNorm, matmuls and the optimizer land in theirs, nothing heavy in
    'other'."""
    from dcgan.gan.training import GAN

    ops = GAN(tiny_train_cfg, tiny_images).step_graph().get_operations()
    by_kind = {}
    for op in ops:
        kind = kinds.tensorflow_kind(op.type, op.name)
        assert kind in kinds.KINDS
        by_kind.setdefault(kind, []).append(op)
    conv = {
        k: {op.type for op in by_kind.get(k, []) if op.type.startswith("Conv2D")}
        for k in kinds.KINDS
    }
    assert conv["G transposed conv, forward"] == {"Conv2DBackpropInput"}
    assert conv["G transposed conv, backward"] == {"Conv2D", "Conv2DBackpropFilter"}
    assert conv["D conv, forward"] == {"Conv2D"}
    assert conv["D conv, backward"] == {"Conv2DBackpropInput", "Conv2DBackpropFilter"}
    types = {k: {op.type for op in v} for k, v in by_kind.items()}
    assert "FusedBatchNormV3" in types["BatchNorm, forward"]
    assert "FusedBatchNormGradV3" in types["BatchNorm, backward"]
    assert "MatMul" in types["Dense (matmul), forward"] & types["Dense (matmul), backward"]
    assert {"LeakyRelu", "Tanh"} <= types["activations, forward"]
    assert {"LeakyReluGrad", "TanhGrad"} <= types["activations, backward"]
    assert {"AssignSubVariableOp", "Sqrt", "RealDiv"} <= types["Adam"]
    heavy = {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BiasAddGrad"}
    assert not heavy & types["other (noise, gather, loss, moving statistics)"]


@pytest.mark.parametrize(
    ("name", "shapes", "top_level", "kind"),
    [
        (
            "aten::convolution",
            [[128, 256, 7, 7], [256, 128, 3, 3]],
            False,
            "G transposed conv, forward",
        ),
        (BACKWARD, [[128, 64, 14, 14], [128, 128, 14, 14]], False, "G transposed conv, backward"),
        ("aten::convolution", [[128, 64, 7, 7], [128, 64, 3, 3]], False, "D conv, forward"),
        (BACKWARD, [[128, 32, 14, 14], [128, 1, 28, 28]], False, "D conv, backward"),
        (NODE + "ConvolutionBackward0", [], True, None),
        ("aten::conv_transpose2d", [[128, 256, 7, 7]], True, None),
        ("Optimizer.step#Adam.step", [], True, "Adam"),
        ("aten::batch_norm", [[128, 64, 14, 14]], True, "BatchNorm, forward"),
        (NODE + "NativeBatchNormBackward0", [], True, "BatchNorm, backward"),
        ("aten::leaky_relu", [[128, 32, 14, 14]], True, "activations, forward"),
        (NODE + "TanhBackward0", [], True, "activations, backward"),
        ("aten::linear", [[128, 100]], True, "Dense (matmul), forward"),
        (NODE + "AddmmBackward0", [], True, "Dense (matmul), backward"),
        ("aten::mm", [[128, 2048]], False, None),
        ("aten::randn", [], True, "other (noise, gather, loss, moving statistics)"),
    ],
)
def test_pytorch_events_are_counted_once_in_their_kind(kinds, name, shapes, top_level, kind):
    assert kinds.torch_kind(name, shapes, top_level) == kind


def test_a_convolution_of_another_model_is_refused(kinds):
    with pytest.raises(ValueError, match="not the book's DCGAN"):
        kinds.torch_kind("aten::convolution", [[128, 3, 32, 32]], False)
