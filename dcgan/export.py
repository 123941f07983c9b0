"""Generator -> ONNX with tf2onnx, traced in inference mode, self-describing metadata."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import keras
import onnx
import tensorflow as tf
import tf2onnx

from dcgan.config import ExportConfig, flat_params
from dcgan.errors import DcganError
from dcgan.files import atomic_path, sha256_file
from dcgan.models import as_float32, generator_z_dim, load_model
from dcgan.onnx_opt import UnsupportedGraph, max_abs_difference, rewrite_generator
from dcgan.sampling import INPUT_NAME, OUTPUT_NAME, draw_noise
from dcgan.tracking import GENERATOR_TAG, ONNX_TAG, Tracker

log = logging.getLogger(__name__)

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
    ``optimize`` rewrites tf2onnx's graph for onnxruntime (dcgan.onnx_opt), checked against
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
            model, graph = rewritten, "tf2onnx, rewritten for onnxruntime (dcgan.onnx_opt)"
    meta = {
        "z_dim": str(z_dim),
        "input": f"{INPUT_NAME}: float32 [N, {z_dim}], z ~ N(0, 1)",
        "output": f"{OUTPUT_NAME}: float32 [N, 28, 28, 1], NHWC",
        "output_range": "[-1, 1]; pixel = (x + 1) * 127.5",
        "layout": "NHWC",
        "graph": graph,
        **(metadata or {}),
    }
    onnx.helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
    name_batch_dimension(model)
    onnx.checker.check_model(model, full_check=True)
    return model


BATCH_DIM = "batch"


def name_batch_dimension(model: onnx.ModelProto) -> None:
    """Call the dynamic batch dimension ``batch`` everywhere in the graph's signature.

    tf2onnx names it from a process-wide counter (``unk__129``, ``unk__130``, ...), so the
    same generator would export to different bytes from one run to the next.
    """
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def export(
    cfg: ExportConfig, models_dir: str | os.PathLike[str], onnx_path: str | os.PathLike[str]
) -> Path:
    """The export stage: models/generator.keras -> ``onnx_path``, logged to the training's run."""
    models_dir, onnx_path = Path(models_dir), Path(onnx_path)
    training = _read_training(models_dir)
    generator = load_model(models_dir / "generator.keras")
    z_dim = generator_z_dim(generator)
    if z_dim != training["z_dim"]:
        raise DcganError(
            f"{models_dir / 'generator.keras'} takes z of width {z_dim} but "
            f"{models_dir / 'training.json'} says {training['z_dim']}; "
            "retrain with `dvc repro -f train`"
        )
    params = {**training["params"], **flat_params("export", cfg)}
    model = generator_to_onnx(
        generator,
        cfg.opset,
        {
            "params": json.dumps(params, sort_keys=True),
            "data_sha256": training["data"].get("sha256") or "",
        },
        optimize=cfg.optimize,
    )
    with atomic_path(onnx_path) as tmp:
        onnx.save(model, str(tmp))
    log.info(
        "exported %s (opset %d, %.1f MB)", onnx_path, cfg.opset, onnx_path.stat().st_size / 1e6
    )

    tracker = Tracker.for_artifact(
        training["params"]["train.experiment"],
        GENERATOR_TAG,
        sha256_file(models_dir / "generator.keras"),
        what="generator",
    )
    if tracker is not None:
        tracker.log_params(flat_params("export", cfg))
        tracker.log_metrics({"onnx_size_mb": onnx_path.stat().st_size / 1e6})
        tracker.set_tags({ONNX_TAG: sha256_file(onnx_path)})
        _log_onnx_model(tracker, model, z_dim)
    return onnx_path


def _log_onnx_model(tracker: Tracker, model: onnx.ModelProto, z_dim: int) -> None:
    import mlflow
    import onnxruntime as ort
    from mlflow.models import infer_signature

    example = draw_noise(2, z_dim, seed=0)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (image,) = session.run([OUTPUT_NAME], {INPUT_NAME: example})
    mlflow.set_tracking_uri(tracker.uri)
    with mlflow.start_run(run_id=tracker.run_id):
        mlflow.onnx.log_model(
            model,
            name="generator",
            signature=infer_signature(example, image),
            input_example=example,
        )


def _read_training(models_dir: Path) -> dict[str, Any]:
    path = models_dir / "training.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DcganError(f"{path} not found; run `dvc repro train` first") from None
    except json.JSONDecodeError as exc:
        raise DcganError(f"{path} is not valid JSON ({exc}); run `dvc repro -f train`") from None
