"""The export stage: the trained Keras generator -> ONNX, logged into the run that trained the
generator (found by the generator's SHA-256, see dcgan.tracking.lineage)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import onnx

from dcgan.config import FLOAT32, KEEP_LAST, ExportConfig, flat_params
from dcgan.contract import GENERATOR_SHA256, INPUT_NAME, OUTPUT_NAME, draw_noise
from dcgan.files import atomic_path, read_json, sha256_file
from dcgan.gan.models import generator_z_dim
from dcgan.gan.shipped import LIVE
from dcgan.machine import devices, environment
from dcgan.pipeline.paths import ExportPaths
from dcgan.saving import load_model
from dcgan.shipping.export import generator_to_onnx
from dcgan.tracking.lineage import GENERATOR_TAG, MODEL_URI_TAG, ONNX_TAG, experiment_of
from dcgan.tracking.tracker import Tracker

log = logging.getLogger(__name__)
# What a training.json from before train.ema_decay and train.keep shipped.
DEFAULT_SHIPPED = {"kind": LIVE, "keep": KEEP_LAST}


def run(cfg: ExportConfig, paths: ExportPaths) -> Path:
    """Convert the generator (trained as ``paths.training`` says), write ``paths.out`` whole,
    then log the model into the training's MLflow run. The file's metadata carries the
    generator's SHA-256 and ``env.*``: ``paths.lock``'s SHA-256 and the key packages'
    versions."""
    generator_path, onnx_path = paths.generator, paths.out
    training = read_json(paths.training, "train")
    trained_in = training.get("environment", {})
    # The conversion runs on the CPU whatever trained the weights: the record keeps the device
    # that trained them.
    env = {**environment.describe(paths.lock), **devices.of_record(trained_in)}
    if trained_in and trained_in != env:
        log.warning(
            "exporting in another environment than training's (%s; trained with %s)",
            environment.summary(env),
            environment.summary(trained_in),
        )
    generator = load_model(generator_path, "train")
    generator_sha256 = sha256_file(generator_path)
    params = {**training["params"], **flat_params("export", cfg)}
    model = generator_to_onnx(
        generator,
        cfg.opset,
        {
            "params": json.dumps(params, sort_keys=True),
            "trained_precision": training.get("precision", FLOAT32),
            # Which generator: live or averaged, kept at the last iteration or the best.
            "generator": json.dumps(training.get("generator", DEFAULT_SHIPPED), sort_keys=True),
            "data_sha256": training["data"].get("sha256") or "",
            GENERATOR_SHA256: generator_sha256,  # which .keras file this is (evaluate checks)
            **environment.as_tags(env),
        },
        optimize=cfg.optimize,
    )
    with atomic_path(onnx_path) as tmp:
        onnx.save(model, str(tmp))
    size_mb = onnx_path.stat().st_size / 1e6
    log.info("exported %s (opset %d, %.1f MB)", onnx_path, cfg.opset, size_mb)

    tracker = Tracker.for_artifact(
        experiment_of(training["params"]),
        GENERATOR_TAG,
        generator_sha256,
        what="generator",
    )
    if tracker is not None:
        tracker.log_params(flat_params("export", cfg))
        tracker.log_metrics({"onnx_size_mb": size_mb})
        tracker.set_tags({ONNX_TAG: sha256_file(onnx_path)})
        _log_onnx_model(tracker, model, generator_z_dim(generator))
    return onnx_path


def _log_onnx_model(tracker: Tracker, model: onnx.ModelProto, z_dim: int) -> None:
    """The ONNX flavour as ``generator``, with an input example and its output."""
    import onnxruntime as ort

    example = draw_noise(2, z_dim, seed=0)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (image,) = session.run([OUTPUT_NAME], {INPUT_NAME: example})
    model_uri = tracker.log_onnx_model(model, "generator", example, image)
    tracker.set_tags({MODEL_URI_TAG: model_uri})  # what evaluate registers
