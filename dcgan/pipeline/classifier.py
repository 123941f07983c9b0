"""The classifier stage: the MNIST CNN that measures sample quality, trained on the prepared
real training split and scored on the prepared test split (MNIST's official 10 000 digits
for the ``mnist`` source)."""

from __future__ import annotations

import logging
from typing import Any

from dcgan.config import ClassifierConfig
from dcgan.data import load_prepared
from dcgan.files import write_json
from dcgan.machine import memory
from dcgan.pipeline.paths import ClassifierPaths
from dcgan.quality.classifier import accuracy, feature_head, train_classifier
from dcgan.saving import save_model

log = logging.getLogger(__name__)


def run(cfg: ClassifierConfig, paths: ClassifierPaths) -> dict[str, Any]:
    """Train on the training split; write the model and its accuracy report."""
    data = load_prepared(paths.data)
    memory.check(memory.classifier(cfg, len(data.x_train)), "classifier")
    model = train_classifier(cfg, data.x_train, data.y_train)
    head = feature_head(model)
    report = {
        "test_accuracy": accuracy(head, data.x_test, data.y_test),
        "train_accuracy": accuracy(head, data.x_train, data.y_train),
        "train_count": int(len(data.y_train)),
        "test_count": int(len(data.y_test)),
    }
    save_model(model, paths.model)
    write_json(paths.report, report)
    log.info(
        "classifier: test accuracy %.2f%% on %d images (%s)",
        100 * report["test_accuracy"],
        report["test_count"],
        paths.model,
    )
    return report
