"""The prepare stage: MNIST from ``prepare.source`` -> normalised .npy splits and meta.json."""

from __future__ import annotations

import logging
from typing import Any

from dcgan.config import PrepareConfig, flat_params
from dcgan.data import write_prepared
from dcgan.pipeline.paths import PreparePaths
from dcgan.sources import load_source

log = logging.getLogger(__name__)


def run(cfg: PrepareConfig, paths: PreparePaths) -> dict[str, Any]:
    """Load and check the source, then write ``paths.out`` whole (or not at all)."""
    raw = load_source(cfg)
    meta = write_prepared(raw, paths.out, flat_params("prepare", cfg))
    log.info(
        "prepared %s: %d train, %d test images -> %s",
        raw.source,
        meta["train_count"],
        meta["test_count"],
        paths.out,
    )
    return meta
