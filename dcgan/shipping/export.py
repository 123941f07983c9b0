"""Generator -> ONNX with tf2onnx, traced in inference mode, self-describing metadata.

The export stage around it (reading models/, writing the file, MLflow) is
dcgan.pipeline.export."""

from __future__ import annotations

import logging
from typing import Any

import keras
import onnx
import tensorflow as tf
import tf2onnx

from dcgan.contract import BATCH_DIM, INPUT_NAME, OUTPUT_NAME, draw_noise
from dcgan.errors import DcganError
from dcgan.gan.models import as_float32, generator_z_dim
from dcgan.shipping.onnx_opt import UnsupportedGraph, max_abs_difference, rewrite_generator

log = logging.getLogger(__name__)
# The metadata's "graph" value of an optimised file, as 0.2.0 shipped it: a file's metadata does
# not move with the code (the rewrites now live in dcgan.shipping.onnx_opt).
REWRITTEN = "tf2onnx, rewritten for onnxruntime (dcgan.onnx_opt)"

# The rewritten graph is the same function computed in another order: float32 rounding
# moves outputs in [-1, 1] by ~1e-6. More than this would mean a wrong rewrite.
REWRITE_TOLERANCE = 1e-5


def generator_to_onnx(
    generator: keras.Model,
    opset: int,
    metadata: dict[str, Any] | None = None,
    optimize: bool = True,
) -> onnx.ModelProto:
    """Convert a Keras generator to an ONNX model with input ``z`` [N, z_dim] and output
    ``image`` [N, 28, 28, 1] (NHWC, in [-1, 1]); the batch dimension stays dynamic.

    ``tf2onnx.convert.from_keras`` fails on Keras 3 models (tf2onnx #2448), so we trace
    ``generator(z, training=False)`` ourselves. ``training=False`` matters: a training-mode
    trace exports batch-statistics BatchNorm, whose output depends on the batch.
    ``optimize`` rewrites tf2onnx's graph for onnxruntime (dcgan.shipping.onnx_opt), checked against
    the unrewritten graph on 64 noise vectors.
    """
    z_dim = generator_z_dim(generator)
    generator = as_float32(generator)  # a mixed_bfloat16 model exports as float32 maths

    @tf.function(input_signature=[tf.TensorSpec((None, z_dim), tf.float32, name=INPUT_NAME)])
    def sample(z: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: generator(z, training=False)}  # dict key names the ONNX output

    model, _ = tf2onnx.convert.from_function(
        sample, input_signature=sample.input_signature, opset=opset
    )
    model.doc_string = "DCGAN generator (GANs in Action, ch. 4): z ~ N(0, 1) -> 28x28 digit"
    graph = "tf2onnx"
    if optimize:
        try:
            rewritten = rewrite_generator(model)
        except UnsupportedGraph as exc:
            log.warning("kept tf2onnx's graph, it is not one the rewrites know (%s)", exc)
        else:
            diff = max_abs_difference(model, rewritten, draw_noise(64, z_dim, seed=0))
            if diff > REWRITE_TOLERANCE:
                raise DcganError(
                    f"the optimised ONNX graph differs from tf2onnx's by {diff:.2e} "
                    f"(> {REWRITE_TOLERANCE:g}); set export.optimize: false and report a bug"
                )
            model, graph = rewritten, REWRITTEN
    meta = {
        # z_dim is the input's second dimension: the signature carries it, nothing else.
        "input": f"{INPUT_NAME}: float32 [{BATCH_DIM}, z_dim], z ~ N(0, 1)",
        "output": f"{OUTPUT_NAME}: float32 [{BATCH_DIM}, 28, 28, 1], NHWC",
        "output_range": "[-1, 1]; pixel = (x + 1) * 127.5",
        "layout": "NHWC",
        "graph": graph,
        **(metadata or {}),
    }
    onnx.helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
    name_batch_dimension(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def name_batch_dimension(model: onnx.ModelProto) -> None:
    """Call the dynamic batch dimension ``batch`` everywhere in the graph's signature.

    tf2onnx names it from a process-wide counter (``unk__129``, ``unk__130``, ...), so the
    same generator would export to different bytes from one run to the next.
    """
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM
