"""The prepare stage: MNIST from ``prepare.source`` -> normalised .npy splits and meta.json."""

from __future__ import annotations

import logging
import os
from typing import Any

from dcgan.config import PrepareConfig, flat_params
from dcgan.data import write_prepared
from dcgan.sources import load_source

log = logging.getLogger(__name__)


def run(cfg: PrepareConfig, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check the source, then write ``out_dir`` whole (or not at all)."""
    raw = load_source(cfg)
    meta = write_prepared(raw, out_dir, flat_params("prepare", cfg))
    log.info(
        "prepared %s: %d train, %d test images -> %s",
        raw.source,
        meta["train_count"],
        meta["test_count"],
        out_dir,
    )
    return meta
