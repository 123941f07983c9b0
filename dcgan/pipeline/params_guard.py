"""The guard against params.yaml changing under a running train stage.

DVC records params.yaml as it is when the stage ends. Another ``dvc exp run`` in the same
clone rewrites it meanwhile, and dvc.lock would then pair the models with params that did not
make them: the stage checks the train block at every interval and before writing any output,
and stops instead.
"""

from __future__ import annotations

import os
from dataclasses import fields

import numpy as np

from dcgan.config import TrainConfig, load_config
from dcgan.errors import DcganError
from dcgan.loop import Callback


class ParamsChanged(DcganError):
    """params.yaml's train block is no longer what this run trains with."""


def check_params_unchanged(
    cfg: TrainConfig, params_file: str | os.PathLike[str], cause: BaseException | None = None
) -> None:
    """DVC records params.yaml as it is when the stage ends; it must be what trained."""
    try:
        now = load_config("train", params_file)
    except DcganError as exc:  # edited into something invalid: changed all the same
        what = str(exc)
    else:
        changed = [f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(now, f.name)]
        if not changed:
            return
        what = ", ".join(
            f"train.{k} {getattr(cfg, k)!r} -> {getattr(now, k)!r}" for k in changed[:3]
        )
    raise ParamsChanged(
        f"{params_file} changed while training ({what}); no model was written, since "
        "dvc.lock would pair it with params that did not make it. Run parallel "
        "experiments with `dvc exp run --queue` and `dvc queue start`, then rerun this one"
    ) from cause


class WatchParams(Callback):
    """Stops at the first interval after params.yaml's train block changed: the run could no
    longer be recorded, so the iterations left would be CPU spent for nothing."""

    def __init__(self, cfg: TrainConfig, params_file: str | os.PathLike[str]) -> None:
        self.cfg, self.params_file = cfg, params_file

    def on_interval(self, iteration: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        check_params_unchanged(self.cfg, self.params_file)
