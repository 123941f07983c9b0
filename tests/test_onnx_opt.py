"""The onnxruntime rewrites of the generator graph compute the same function."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx import numpy_helper as nh

from dcgan.shipping.onnx_opt import UnsupportedGraph, max_abs_difference, rewrite_generator


def _chain(z_dim, hwc, layers, seed=0, final="Transpose"):
    """A tf2onnx-shaped generator graph: MatMul, Add, Reshape (NHWC), Transpose (NCHW), then per
    layer ConvTranspose (stride, kernel, pad_begin) -> Mul -> Add -> activation, then NHWC."""
    rng = np.random.default_rng(seed)
    h, w, c = hwc
    inits, nodes = [], []

    def const(name, value):
        inits.append(nh.from_array(np.asarray(value), name))
        return name

    nodes += [
        helper.make_node(
            "MatMul",
            ["z", const("W", rng.normal(0, 0.1, (z_dim, h * w * c)).astype(np.float32))],
            ["m"],
        ),
        helper.make_node(
            "Add", ["m", const("b", rng.normal(0, 0.1, h * w * c).astype(np.float32))], ["a"]
        ),
        helper.make_node(
            "Reshape", ["a", const("shape", np.array([-1, h, w, c], np.int64))], ["r"]
        ),
        helper.make_node("Transpose", ["r"], ["x0"], perm=[0, 3, 1, 2]),
    ]
    x, size = "x0", h
    for i, (c_out, stride, kernel, pad, act) in enumerate(layers):
        pads = [pad, pad, kernel - stride - pad, kernel - stride - pad]
        weight = rng.normal(0, 0.2, (c, c_out, kernel, kernel)).astype(np.float32)
        bias = rng.normal(0, 0.1, c_out).astype(np.float32)
        nodes.append(
            helper.make_node(
                "ConvTranspose",
                [x, const(f"k{i}", weight), const(f"kb{i}", bias)],
                [f"t{i}"],
                strides=[stride, stride],
                kernel_shape=[kernel, kernel],
                pads=pads,
            )
        )
        scale = rng.uniform(0.5, 1.5, (1, c_out, 1, 1)).astype(np.float32)
        shift = rng.normal(0, 0.1, (1, c_out, 1, 1)).astype(np.float32)
        nodes.append(helper.make_node("Mul", [f"t{i}", const(f"s{i}", scale)], [f"u{i}"]))
        nodes.append(helper.make_node("Add", [f"u{i}", const(f"o{i}", shift)], [f"v{i}"]))
        kwargs = {"alpha": 0.2} if act == "LeakyRelu" else {}
        nodes.append(helper.make_node(act, [f"v{i}"], [f"x{i + 1}"], **kwargs))
        x, c, size = f"x{i + 1}", c_out, size * stride
    if final == "Transpose":
        nodes.append(helper.make_node("Transpose", [x], ["image"], perm=[0, 2, 3, 1]))
    else:
        nodes.append(
            helper.make_node(
                "Reshape", [x, const("out", np.array([-1, size, size, c], np.int64))], ["image"]
            )
        )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["N", z_dim])],
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["N", size, size, c])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize(
    "layers",
    [
        # the book's generator: (C_out, stride, kernel, pad_begin, activation)
        [(12, 2, 3, 0, "LeakyRelu"), (8, 1, 3, 1, "LeakyRelu"), (1, 2, 3, 0, "Tanh")],
        [(6, 2, 4, 1, "Relu"), (5, 2, 4, 1, "LeakyRelu"), (3, 2, 4, 1, "Sigmoid")],
        [(6, 3, 5, 1, "Relu"), (4, 1, 5, 2, "Tanh"), (2, 2, 5, 2, "Tanh")],
        [(6, 2, 3, 1, "Relu"), (4, 2, 2, 0, "LeakyRelu"), (2, 1, 1, 0, "Tanh")],
    ],
)
def test_rewrite_computes_the_same_function(layers):
    model = _chain(7, (3, 3, 5), layers)
    rewritten = rewrite_generator(model)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "ConvTranspose" not in ops and "MatMul" not in ops and ops[0] == "Gemm"
    z = np.random.default_rng(1).standard_normal((9, 7)).astype(np.float32)
    assert max_abs_difference(model, rewritten, z) <= 1e-5
    assert rewritten.graph.input[0] == model.graph.input[0]
    assert rewritten.graph.output[0] == model.graph.output[0]


def test_rewrite_keeps_a_dynamic_batch_and_batch_independence():
    import onnxruntime as ort

    model = rewrite_generator(
        _chain(4, (2, 2, 3), [(3, 2, 3, 0, "Relu"), (1, 2, 3, 0, "Tanh")], final="Reshape")
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    together = session.run(None, {"z": z})[0]
    alone = np.concatenate([session.run(None, {"z": z[i : i + 1]})[0] for i in range(5)])
    assert together.shape == (5, 8, 8, 1) and np.abs(together - alone).max() <= 1e-6


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda g: g.node.insert(0, helper.make_node("Identity", ["z"], ["side"])),
            "exactly one node",
        ),
        (
            lambda g: g.node[3].attribute[0].ints.__setitem__(slice(None), [0, 2, 3, 1]),
            "transpose to NCHW",
        ),
        (
            lambda g: g.node[4].attribute.append(helper.make_attribute("group", 2)),
            "'same' upsampling",
        ),
        (
            lambda g: g.node[4].attribute.append(helper.make_attribute("output_padding", [1, 1])),
            "'same'",
        ),
        (lambda g: setattr(g.node[4], "op_type", "Conv"), "no ConvTranspose"),
    ],
)
def test_graphs_it_does_not_know_are_refused(edit, message):
    model = _chain(4, (2, 2, 3), [(3, 2, 3, 0, "Relu"), (1, 2, 3, 0, "Tanh")])
    edit(model.graph)
    with pytest.raises(UnsupportedGraph, match=message):
        rewrite_generator(model)


def test_export_uses_the_rewrite_and_checks_it(monkeypatch):
    from dcgan.errors import DcganError
    from dcgan.gan.models import build_generator
    from dcgan.shipping import export

    generator = build_generator(16)
    fast = export.generator_to_onnx(generator, opset=17)
    plain = export.generator_to_onnx(generator, opset=17, optimize=False)
    assert "ConvTranspose" not in {n.op_type for n in fast.graph.node}
    assert "ConvTranspose" in {n.op_type for n in plain.graph.node}
    meta = {p.key: p.value for p in fast.metadata_props}
    # The value 0.2.0 shipped: the metadata does not change when the code moves.
    assert meta["graph"] == "tf2onnx, rewritten for onnxruntime (dcgan.onnx_opt)"
    z = np.random.default_rng(0).standard_normal((33, 16)).astype(np.float32)
    assert max_abs_difference(fast, plain, z) <= 1e-5

    def wrong(model):  # a rewrite that is off by a little: the export must refuse it
        out = rewrite_generator(model)
        for init in out.graph.initializer:
            if init.name == "dense/b":
                init.CopyFrom(nh.from_array(nh.to_array(init) + 1e-3, init.name))
        return out

    monkeypatch.setattr(export, "rewrite_generator", wrong)
    with pytest.raises(DcganError, match="differs from tf2onnx's by .* set export.optimize: false"):
        export.generator_to_onnx(generator, opset=17)


def test_export_keeps_tf2onnx_graph_when_the_rewrite_does_not_apply(monkeypatch, caplog):
    from dcgan.gan.models import build_generator
    from dcgan.shipping import export

    def unsupported(model):
        raise UnsupportedGraph("made up")

    monkeypatch.setattr(export, "rewrite_generator", unsupported)
    model = export.generator_to_onnx(build_generator(16), opset=17)
    assert "ConvTranspose" in {n.op_type for n in model.graph.node}
    assert {p.key: p.value for p in model.metadata_props}["graph"] == "tf2onnx"
    assert "kept tf2onnx's graph" in caplog.text
