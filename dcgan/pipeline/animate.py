"""The animate stage: the train stage's progress grids -> an animated GIF, logged into the
run that trained the generator (found by the generator's SHA-256, like export)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dcgan.config import NoParams
from dcgan.errors import DcganError
from dcgan.files import sha256_file
from dcgan.pictures.animation import grid_files, write_gif
from dcgan.pipeline.paths import AnimatePaths
from dcgan.tracking.lineage import GENERATOR_TAG, experiment_of
from dcgan.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def run(cfg: NoParams, paths: AnimatePaths) -> Path:
    """Write ``paths.out`` from the grids in ``paths.samples``, then log it to the generator's
    run."""
    grids = grid_files(paths.samples)
    gif = write_gif(grids, paths.out)
    log.info("wrote %s (%d frames, %.0f kB)", gif, len(grids), gif.stat().st_size / 1e3)
    tracker = Tracker.for_artifact(
        _experiment(paths.training),
        GENERATOR_TAG,
        sha256_file(paths.generator),
        what="generator",
    )
    if tracker is not None:
        tracker.log_artifact(gif)
    return gif


def _experiment(training_path: Path) -> str | None:
    """The MLflow experiment the generator was trained in, from the train stage's record."""
    try:
        return experiment_of(json.loads(training_path.read_text())["params"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DcganError(
            f"{training_path} does not name the training's experiment ({type(exc).__name__}); "
            "run `dvc repro -f train`"
        ) from None
