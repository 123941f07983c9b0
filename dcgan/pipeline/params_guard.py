"""The guard against another ``dvc exp run`` in the same clone under a running train stage.

DVC records params.yaml as it is when the stage ends. Another ``dvc exp run`` in the same
clone rewrites it meanwhile, and dvc.lock would then pair the models with params that did not
make them: the stage checks the train block at every interval and before writing any output,
and stops instead.

The other run can also end while this one starts, and then it takes this one's experiment
with it: DVC keeps a workspace experiment's baseline in git refs that every workspace run
shares (``refs/exps/exec/``), and a run that ends deletes them (dvc 3.67,
``WorkspaceExecutor.cleanup``). The stage would train and DVC would write dvc.lock, then
fail to save the experiment ("'NoneType' object is not subscriptable"). The same checks
look for the ref, and stop with the cause instead.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import fields
from pathlib import Path

import numpy as np

from dcgan.config import TrainConfig, load_config
from dcgan.errors import DcganError
from dcgan.gan.loop import Callback


class ParamsChanged(DcganError):
    """params.yaml's train block is no longer what this run trains with."""


class ExperimentLost(ParamsChanged):
    """Another ``dvc exp run`` deleted DVC's record of this one: it cannot be saved either."""


def check_experiment_kept(root: str | os.PathLike[str], cause: BaseException | None = None) -> None:
    """Under ``dvc exp run`` (DVC sets DVC_EXP_BASELINE_REV), DVC's baseline ref must still
    be in ``root``'s git repository, or DVC cannot save the experiment this run makes."""
    if not os.environ.get("DVC_EXP_BASELINE_REV"):
        return  # `dvc repro` or a stage run by hand: no experiment to save
    from dvc.repo.experiments.refs import EXEC_BASELINE

    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", EXEC_BASELINE],
        cwd=root,
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        raise ExperimentLost(
            "another `dvc exp run` in this clone ended while this one ran and deleted DVC's "
            f"record of this experiment ({EXEC_BASELINE}), so DVC could not save it; no model "
            "was written. Run parallel experiments with `dvc exp run --queue` and `dvc queue "
            "start`, then rerun this one"
        ) from cause


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
        what = ", ".join(
            f"train.{k} {getattr(cfg, k)!r} -> {getattr(now, k)!r}" for k in changed[:3]
        )
    if what:
        raise ParamsChanged(
            f"{params_file} changed while training ({what}); no model was written, since "
            "dvc.lock would pair it with params that did not make it. Run parallel "
            "experiments with `dvc exp run --queue` and `dvc queue start`, then rerun this one"
        ) from cause
    check_experiment_kept(Path(params_file).resolve().parent, cause)


class WatchParams(Callback):
    """Stops at the first interval after params.yaml's train block changed: the run could no
    longer be recorded, so the iterations left would be CPU spent for nothing."""

    def __init__(self, cfg: TrainConfig, params_file: str | os.PathLike[str]) -> None:
        self.cfg, self.params_file = cfg, params_file

    def on_interval(self, iteration: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        check_params_unchanged(self.cfg, self.params_file)
