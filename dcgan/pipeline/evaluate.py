"""The evaluate stage: ONNX (onnxruntime) against Keras on the same noise, and the quality of
the ONNX samples, logged into the run that produced the ONNX file (found by its SHA-256); the
generator then becomes a version of the registered model (dcgan.tracking.registry)."""

from __future__ import annotations

import json
import logging
from typing import Any

from dcgan.config import EvaluateConfig, flat_params
from dcgan.contract import GENERATOR_SHA256, draw_noise
from dcgan.data import load_prepared
from dcgan.errors import DcganError
from dcgan.files import sha256_file, write_json
from dcgan.gan.models import generator_z_dim
from dcgan.machine import memory
from dcgan.pictures.plots import save_by_class, save_grid
from dcgan.pipeline.paths import EvaluatePaths
from dcgan.quality.evaluation import check_sample_count, keras_generate, parity, quality_metrics
from dcgan.saving import load_model
from dcgan.shipping.sampling import generate, load_session, z_dim_of
from dcgan.tracking import registry
from dcgan.tracking.lineage import ONNX_TAG, experiment_of
from dcgan.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def run(cfg: EvaluateConfig, paths: EvaluatePaths) -> dict[str, Any]:
    """Write the metrics, class shares, a grid of ONNX samples and the samples by predicted
    digit; fail (after writing them) if ONNX and the Keras generator it was exported from
    differ beyond the tolerance."""
    # Over 60 lines: the stage's story (sample, compare, score, write, record, register)
    # read top to bottom, as pipeline/train.run is.
    onnx_path, generator_path = paths.onnx, paths.generator
    session = load_session(onnx_path)
    z_dim = z_dim_of(session)
    generator = load_model(generator_path, "train")
    if generator_z_dim(generator) != z_dim:
        raise DcganError(
            f"{generator_path} takes z of width "
            f"{generator_z_dim(generator)} but {onnx_path} takes {z_dim}; "
            "re-export with `dvc repro -f export`"
        )
    # What the ONNX file says of itself, and its hash: they find its run and tag its version.
    meta = session.get_modelmeta().custom_metadata_map
    exported_from = meta.get(GENERATOR_SHA256)
    if exported_from and exported_from != sha256_file(generator_path):
        raise DcganError(
            f"{onnx_path} was exported from another generator than {generator_path} "
            f"(SHA-256 {exported_from[:12]}...); re-export with `dvc repro -f export`"
        )
    data = load_prepared(paths.data)
    memory.check(memory.evaluate(cfg, len(data.x_train), len(data.x_test)), "evaluate")
    classifier = load_model(paths.classifier, "classifier")
    check_sample_count("evaluate.num_samples", cfg.num_samples, classifier)

    z = draw_noise(cfg.num_samples, z_dim, cfg.seed)
    onnx_images = generate(session, z)  # (N, 28, 28, 1)
    metrics: dict[str, Any] = {
        "num_samples": int(cfg.num_samples),
        **parity(onnx_images, keras_generate(generator, z), cfg.tolerance),
    }
    scores, probs = quality_metrics(classifier, onnx_images, data.x_test, data.x_train)
    shares = scores.pop("class_shares")
    metrics.update(scores)
    write_json(paths.metrics, metrics)
    write_json(paths.class_shares, {str(d): s for d, s in enumerate(shares)})
    grid = save_grid(onnx_images[:64], paths.grid, cols=8)
    by_class = save_by_class(onnx_images, probs, paths.by_class)

    onnx_params, onnx_sha256 = json.loads(meta.get("params", "{}")), sha256_file(onnx_path)
    # The newest run of the file's experiment (from its params) tagged with its SHA-256.
    tracker = Tracker.for_artifact(
        experiment_of(onnx_params),
        ONNX_TAG,
        onnx_sha256,
        what="ONNX file",
    )
    if tracker is not None:
        tracker.log_params(flat_params("evaluate", cfg))
        tracker.log_metrics({k: float(v) for k, v in metrics.items()})
        tracker.log_metrics({f"class_share_{d}": s for d, s in enumerate(shares)})
        tracker.log_artifact(grid)
        tracker.log_artifact(by_class)
        if metrics["onnx_within_tolerance"]:
            registry.register(
                tracker,
                cfg.registered_model,
                metrics,
                {
                    "data_source": onnx_params.get("prepare.source", ""),
                    "data_sha256": meta.get("data_sha256", ""),
                    "classifier_sha256": sha256_file(paths.classifier),
                    "onnx_sha256": onnx_sha256,
                    # live or averaged, kept at the last iteration or the best (export's record)
                    "generator": meta.get("generator", ""),
                },
            )
    log.info("evaluate: %s", json.dumps(metrics))
    if not metrics["onnx_within_tolerance"]:
        raise DcganError(
            f"ONNX and Keras outputs differ by up to {metrics['onnx_max_abs_diff']:.3g}"
            f", above evaluate.tolerance={cfg.tolerance:g}; check the export "
            "(training=False trace, opset) or raise the tolerance"
        )
    return metrics
