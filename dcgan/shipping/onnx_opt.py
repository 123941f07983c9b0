"""Rewrites of the exported generator graph that make onnxruntime fast on CPUs.

tf2onnx gives a faithful graph: MatMul -> Add -> Reshape (NHWC) -> Transpose (NCHW), then
per layer ConvTranspose -> BatchNorm as Mul/Add -> activation, then back to NHWC.
onnxruntime's CPU ConvTranspose is a per-image GEMM plus col2im and was ~85 % of its time
(slower than TensorFlow at batch 64 and 1024). The same function, computed differently:

* Dense -> Reshape -> first ConvTranspose -> BatchNorm has no non-linearity in between, so
  it is one affine map of z: a single Gemm (100 x 25 088 for the book's generator),
  31.4 -> 5.0 MFLOP per image. Its columns are laid out NCHW, so no Transpose is needed.
* A stride-1 ConvTranspose is a Conv with the kernel flipped and its channel axes swapped.
* A stride-s ConvTranspose is a Conv producing the s*s output phases as channels,
  followed by DepthToSpace (sub-pixel convolution); BatchNorm is folded into the weights.

All of them are exact in real arithmetic; :func:`dcgan.shipping.export.generator_to_onnx` also
checks the rewritten graph against tf2onnx's on a fixed noise batch (with
:func:`max_abs_difference`) and refuses a result that differs by more than its
``REWRITE_TOLERANCE``. The rewrites need numpy and onnx alone; :func:`max_abs_difference`
runs both graphs with onnxruntime (imported when it is called), never TensorFlow.

Over 300 lines on purpose: the parse of tf2onnx's graph and the rewrite share the layer
types (``_Dense``, ``_Deconv``) and the phase arithmetic; apart, each would import the
other's private names.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper as nh

ACTIVATIONS = ("LeakyRelu", "Relu", "Tanh", "Sigmoid")


class UnsupportedGraph(ValueError):
    """The graph is not the Dense -> Reshape -> ConvTranspose chain these rewrites know."""


@dataclass
class _Dense:
    weight: np.ndarray  # (z_dim, H*W*C), columns in NHWC order
    bias: np.ndarray  # (H*W*C,)
    hwc: tuple[int, int, int]  # the Reshape's target


@dataclass
class _Deconv:
    weight: np.ndarray  # (C_in, C_out, kH, kW), ONNX ConvTranspose layout
    bias: np.ndarray  # (C_out,)
    strides: tuple[int, int]
    pads_begin: tuple[int, int]
    scale: np.ndarray = field(init=False)  # per output channel, from following Muls
    shift: np.ndarray = field(init=False)  # per output channel, from following Adds
    activation: onnx.NodeProto | None = None

    def __post_init__(self) -> None:
        self.scale = np.ones(self.weight.shape[1])
        self.shift = np.zeros(self.weight.shape[1])

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Weight and bias with the per-channel affine (inference BatchNorm) folded in."""
        weight = self.weight.astype(np.float64) * self.scale[None, :, None, None]
        return weight, self.bias.astype(np.float64) * self.scale + self.shift


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _parse(model: onnx.ModelProto) -> tuple[_Dense, list[_Deconv]]:
    """The generator as a dense layer and a list of transposed convolutions."""
    # Long on purpose: one walk of tf2onnx's graph that refuses, with a reason, every shape
    # it does not recognise; split, the refusals would lose the context that explains them.
    graph = model.graph
    consts = {i.name: nh.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = nh.to_array(_attrs(node)["value"])
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise UnsupportedGraph("expected one input and one output")
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def const(node: onnx.NodeProto, i: int) -> np.ndarray:
        if i >= len(node.input) or node.input[i] not in consts:
            raise UnsupportedGraph(f"{node.op_type} {node.name!r}: input {i} is not a constant")
        return consts[node.input[i]].astype(np.float64)

    # Walk the single chain from the input; every node but Constants must be on it.
    chain, tensor = [], graph.input[0].name
    while tensor != graph.output[0].name:
        nodes = [n for n in consumers.get(tensor, []) if n.op_type != "Constant"]
        if len(nodes) != 1 or nodes[0].input[0] != tensor:
            raise UnsupportedGraph(f"{tensor!r} does not feed exactly one node on a chain")
        chain.append(nodes[0])
        tensor = nodes[0].output[0]
    if len(chain) != sum(n.op_type != "Constant" for n in graph.node):
        raise UnsupportedGraph("the graph has nodes off the input -> output chain")

    # tf2onnx drops an all-zero bias, so the Add is optional.
    if chain[0].op_type != "MatMul":
        raise UnsupportedGraph(f"expected a MatMul first, got {chain[0].op_type}")
    weight = const(chain[0], 1)
    has_bias = len(chain) > 1 and chain[1].op_type == "Add"
    bias = const(chain[1], 1).reshape(-1) if has_bias else np.zeros(weight.shape[1])
    if weight.ndim != 2 or bias.size not in (1, weight.shape[1]):
        raise UnsupportedGraph("the MatMul and Add are not a dense layer")
    chain = chain[1 + has_bias :]
    if [n.op_type for n in chain[:2]] != ["Reshape", "Transpose"]:
        raise UnsupportedGraph("expected a reshape to NHWC, then a transpose to NCHW")
    shape = const(chain[0], 1).astype(np.int64)
    if len(shape) != 4 or min(shape[1:]) <= 0 or list(_attrs(chain[1])["perm"]) != [0, 3, 1, 2]:
        raise UnsupportedGraph("expected a reshape to NHWC, then a transpose to NCHW")
    if weight.shape[1] != np.prod(shape[1:]):
        raise UnsupportedGraph("the dense layer does not match the reshape")
    hwc = (int(shape[1]), int(shape[2]), int(shape[3]))
    dense = _Dense(weight, np.broadcast_to(bias, (weight.shape[1],)), hwc)

    deconvs: list[_Deconv] = []
    tail = chain[2:]
    while tail and tail[0].op_type == "ConvTranspose":
        node, tail = tail[0], tail[1:]
        a = _attrs(node)
        weight = const(node, 1)
        k = weight.shape[2:]
        strides = tuple(a.get("strides", [1, 1]))
        pads = tuple(a.get("pads", [0, 0, 0, 0]))
        if (
            a.get("group", 1) != 1
            or tuple(a.get("dilations", [1, 1])) != (1, 1)
            or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or any(a.get("output_padding", [0, 0]))
            or "output_shape" in a
            or any(pads[i] + pads[i + 2] != k[i] - strides[i] for i in range(2))
        ):
            raise UnsupportedGraph(f"ConvTranspose {node.name!r} is not a 'same' upsampling")
        if deconvs and strides[0] != strides[1]:  # the first one is folded into the Gemm
            raise UnsupportedGraph(f"unequal strides {strides} need two pixel shuffles")
        bias = (
            const(node, 2) if len(node.input) > 2 and node.input[2] else np.zeros(weight.shape[1])
        )
        layer = _Deconv(weight, bias, strides, pads[:2])
        c_out = weight.shape[1]
        while tail and tail[0].op_type in ("Mul", "Add"):
            value = const(tail[0], 1)
            per_channel_nchw = value.ndim >= 3 and value.shape[-3:] == (c_out, 1, 1)
            if value.size != 1 and not (per_channel_nchw and value.size == c_out):
                raise UnsupportedGraph(f"{tail[0].op_type} {tail[0].name!r} is not per channel")
            per_channel = np.broadcast_to(value.reshape(-1), (c_out,))
            if tail[0].op_type == "Mul":
                layer.scale, layer.shift = layer.scale * per_channel, layer.shift * per_channel
            else:
                layer.shift = layer.shift + per_channel
            tail = tail[1:]
        if tail and tail[0].op_type in ACTIVATIONS:
            layer.activation, tail = tail[0], tail[1:]
        deconvs.append(layer)
    if not deconvs:
        raise UnsupportedGraph("no ConvTranspose after the dense layer")
    # The end: back to NHWC, by a Transpose or (one channel) a Reshape.
    if len(tail) != 1 or tail[0].op_type not in ("Transpose", "Reshape"):
        raise UnsupportedGraph(f"unexpected ops at the end: {[n.op_type for n in tail]}")
    if tail[0].op_type == "Transpose" and list(_attrs(tail[0])["perm"]) != [0, 2, 3, 1]:
        raise UnsupportedGraph("the final Transpose is not NCHW -> NHWC")
    if tail[0].op_type == "Reshape" and deconvs[-1].weight.shape[1] != 1:
        raise UnsupportedGraph("a final Reshape is only NCHW -> NHWC for one channel")
    return dense, deconvs


def _taps(stride: int, kernel: int, pad: int) -> dict[int, list[tuple[int, int]]]:
    """For one axis of a ConvTranspose with output = stride * input: output phase r (the
    outputs at stride * p + r) is the sum over (d, k) of input[p - d] * w[k]."""
    return {
        r: [
            (d, stride * d + r + pad)
            for d in range(-kernel, kernel + 1)
            if 0 <= stride * d + r + pad < kernel
        ]
        for r in range(stride)
    }


def _deconv_numpy(x: np.ndarray, layer: _Deconv, with_bias: bool = True) -> np.ndarray:
    """ConvTranspose of NCHW ``x`` (float64) with the folded weights, output = stride * input."""
    weight, bias = layer.folded()
    n, _, h, w = x.shape
    (sh, sw), (ph, pw) = layer.strides, layer.pads_begin
    kh, kw = weight.shape[2:]
    full = np.zeros((n, weight.shape[1], sh * (h - 1) + kh, sw * (w - 1) + kw))
    for i, j in itertools.product(range(kh), range(kw)):
        full[:, :, i : i + sh * (h - 1) + 1 : sh, j : j + sw * (w - 1) + 1 : sw] += np.einsum(
            "nchw,cd->ndhw", x, weight[:, :, i, j]
        )
    out = full[:, :, ph : ph + sh * h, pw : pw + sw * w]
    return out + bias[None, :, None, None] if with_bias else out


def _conv_for_deconv(layer: _Deconv) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """A Conv equal to the ConvTranspose followed by DepthToSpace(stride, DCR): its output
    channel (rh * sw + rw) * C_out + c holds output phase (rh, rw) of channel c.
    Returns weight (s*s*C_out, C_in, LH, LW), bias, kernel shape and pads."""
    weight, bias = layer.folded()
    c_in, c_out, kh, kw = weight.shape
    (sh, sw), (ph, pw) = layer.strides, layer.pads_begin
    taps_h, taps_w = _taps(sh, kh, ph), _taps(sw, kw, pw)

    def span(taps: dict) -> tuple[int, int]:
        ds = [d for t in taps.values() for d, _ in t]
        return min(min(ds), 0), max(max(ds), 0)  # include offset 0: Conv pads are >= 0

    (lo_h, hi_h), (lo_w, hi_w) = span(taps_h), span(taps_w)
    conv = np.zeros((sh * sw * c_out, c_in, hi_h - lo_h + 1, hi_w - lo_w + 1))
    for rh, rw in itertools.product(range(sh), range(sw)):
        rows = slice((rh * sw + rw) * c_out, (rh * sw + rw + 1) * c_out)
        for (dh, ih), (dw, iw) in itertools.product(taps_h[rh], taps_w[rw]):
            # output[p] takes input[p - d]: kernel index hi - d after padding by hi
            conv[rows, :, hi_h - dh, hi_w - dw] = weight[:, :, ih, iw].T
    return (
        conv,
        np.tile(bias, sh * sw),
        [hi_h - lo_h + 1, hi_w - lo_w + 1],
        [hi_h, hi_w, -lo_h, -lo_w],
    )


def rewrite_generator(model: onnx.ModelProto) -> onnx.ModelProto:
    """The generator graph rebuilt from Gemm, Conv and DepthToSpace (see the module doc).

    Raises :class:`UnsupportedGraph` for a graph that is not a Dense -> ConvTranspose chain.
    Inputs, outputs, opset and metadata are kept.
    """
    # Long on purpose: the rebuilt graph is written top to bottom in the order it runs.
    dense, deconvs = _parse(model)
    h, w, c = dense.hwc
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray, dtype=np.float32) -> str:
        inits.append(nh.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def activation(layer: _Deconv, x: str, out: str) -> str:
        if layer.activation is None:
            return x
        node = onnx.NodeProto()
        node.CopyFrom(layer.activation)
        del node.input[:], node.output[:]
        node.input.append(x)
        node.output.append(out)
        node.name = out
        nodes.append(node)
        return out

    # Dense and the first transposed convolution (+ BatchNorm) as one affine map of z.
    first = deconvs[0]
    rows = np.concatenate([dense.weight, dense.bias[None]])  # (z_dim + 1, H*W*C): W, then b
    images = rows.reshape(-1, h, w, c).transpose(0, 3, 1, 2)  # NCHW
    linear = _deconv_numpy(images[:-1], first, with_bias=False)  # (z_dim, C1, H1, W1)
    c1, h1, w1 = linear.shape[1:]
    weight = linear.reshape(len(linear), -1)  # (z_dim, C1*H1*W1), columns NCHW
    bias = _deconv_numpy(images[-1:], first).reshape(-1)
    z = model.graph.input[0].name
    nodes.append(
        helper.make_node("Gemm", [z, const("dense/W", weight), const("dense/b", bias)], ["dense"])
    )
    x = activation(first, "dense", "dense/act")
    nodes.append(
        helper.make_node("Reshape", [x, const("dense/shape", [-1, c1, h1, w1], np.int64)], ["x0"])
    )
    x = "x0"
    for i, layer in enumerate(deconvs[1:], start=1):
        weight, bias, kernel, pads = _conv_for_deconv(layer)
        name = f"deconv{i}"
        inputs = [x, const(f"{name}/W", weight), const(f"{name}/b", bias)]
        nodes.append(
            helper.make_node("Conv", inputs, [name], name=name, kernel_shape=kernel, pads=pads)
        )
        # Element-wise, so it commutes with DepthToSpace; before it, ORT fuses it into the Conv.
        x = activation(layer, name, f"{name}/act")
        stride = layer.strides[0]  # equal on both axes, checked when parsing
        if stride != 1:
            nodes.append(
                helper.make_node("DepthToSpace", [x], [f"{name}/up"], blocksize=stride, mode="DCR")
            )
            x = f"{name}/up"
    out_name = model.graph.output[0].name
    nodes.append(helper.make_node("Transpose", [x], [out_name], perm=[0, 2, 3, 1]))

    graph = helper.make_graph(
        nodes, model.graph.name, list(model.graph.input), list(model.graph.output), inits
    )
    rewritten = helper.make_model(graph, opset_imports=list(model.opset_import))
    for attr in ("ir_version", "producer_name", "producer_version", "doc_string"):
        setattr(rewritten, attr, getattr(model, attr))
    rewritten.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(rewritten, full_check=True)
    return rewritten


def max_abs_difference(a: onnx.ModelProto, b: onnx.ModelProto, z: np.ndarray) -> float:
    """Largest |a(z) - b(z)| with onnxruntime on the CPU."""
    import onnxruntime as ort

    outs = []
    for model in (a, b):
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        outs.append(session.run(None, {session.get_inputs()[0].name: z})[0])
    return float(np.abs(outs[0] - outs[1]).max())
