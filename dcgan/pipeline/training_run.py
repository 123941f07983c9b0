"""The MLflow run of one training, as a context manager: :class:`TrainingRun`.

It opens the run (or continues a resumed one), logs what a crash lost, starts the watcher,
and on the way out closes the run in the one state that is true: FINISHED by :meth:`finish`,
FAILED or KILLED on an error, or left RUNNING when the store went away: with a checkpoint
folder the training is checkpointed first, so a rerun continues the same run; without one the
error says that nothing was saved. The watcher is released whatever happens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from dcgan.config import TrainConfig
from dcgan.contract import FCD
from dcgan.data import Prepared
from dcgan.files import sha256_file
from dcgan.gan import checkpoint
from dcgan.gan.loop import Callback, History
from dcgan.gan.shipped import lowest_fcd
from dcgan.gan.training import STEP_METRICS
from dcgan.machine import environment
from dcgan.machine.precision import Choice
from dcgan.pictures.plots import grid_path
from dcgan.pipeline.params_guard import ParamsChanged, check_params_unchanged
from dcgan.pipeline.paths import TrainPaths
from dcgan.tracking.lineage import GENERATOR_TAG, QUALITY_PREFIX, run_name, run_tags
from dcgan.tracking.retry import TrackerUnavailable
from dcgan.tracking.tracker import Tracker
from dcgan.tracking.watcher import process_tags

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the probe imports TensorFlow; this module only reads its time
    from dcgan.quality.probe import QualityProbe

ENTRY_POINT = "stages/train.py"  # MLflow's source name for the run


@dataclass(frozen=True)
class Origin:
    """What made the models, as the run records it: the params it logs (the data's and the
    train block's), the environment (lock, versions, device) and the prepared data."""

    params: dict[str, Any]
    env: dict[str, str]
    data: Prepared


class TrainingRun:
    """``with TrainingRun(...) as record:`` train inside, then :meth:`finish`.

    ``checkpoint_now(run_id)`` is called when the store stops answering: it saves the state
    at the last recorded interval and says what a rerun will do (the message ends the
    error). ``paths.params``, when given, is checked on any other error: a params.yaml edited
    mid-run is the cause to report, not what it broke."""

    def __init__(
        self,
        cfg: TrainConfig,
        paths: TrainPaths,
        origin: Origin,
        store_uri: str,
        resumed: checkpoint.Resumed | None,
        history: History,
        checkpoint_now: Callable[[str], str],
    ) -> None:
        self.cfg, self.paths, self.origin, self.store_uri = cfg, paths, origin, store_uri
        self.resumed, self.history, self.checkpoint_now = resumed, history, checkpoint_now
        self.logged: set[int] = set()  # iterations whose losses the run holds
        self.scored: set[int] = set()  # iterations whose quality scores the run holds

    def __enter__(self) -> TrainingRun:
        self.tracker = self._open()
        self.tracker.watch()
        try:
            self.tracker.close_abandoned()
            self._backfill()
        except BaseException:
            self.tracker.release()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, TrackerUnavailable):
                # Every tracker call comes right after an interval is recorded in the history:
                # the state is that interval's, so a checkpoint of it loses no iteration.
                raise TrackerUnavailable(
                    f"{exc}. {self.checkpoint_now(self.tracker.run_id)}"
                ) from None
            if isinstance(exc, KeyboardInterrupt):
                self.tracker.finish_quietly("KILLED")
            elif isinstance(exc, Exception):
                self.tracker.finish_quietly("FAILED")
                if self.paths.params is not None and not isinstance(exc, ParamsChanged):
                    # A second `dvc exp run` in this clone also checks out this stage's
                    # outputs (reports/samples) under the running one: its params change is
                    # the cause to report, not the file that vanished.
                    check_params_unchanged(self.cfg, self.paths.params, cause=exc)
        finally:
            self.tracker.release()  # closed, failed, or checkpointed: not the watcher's

    @property
    def run_id(self) -> str:
        return self.tracker.run_id

    def log_precision(self, choice: Choice) -> None:
        """What ``train.precision`` resolved to and why; for auto, what it measured."""
        self.tracker.set_tags(
            {
                "precision": choice.precision,
                "precision_reason": choice.reason,
                "jit_compile": str(choice.jit_compile).lower(),  # XLA: auto on a GPU only
            }
        )
        if choice.measured:
            # MLflow's names take no "+": a GPU's "float32+xla" logs as auto_float32_xla_...
            self.tracker.log_metrics(
                {
                    f"auto_{p.replace('+', '_')}_s_per_iteration": s
                    for p, s in choice.seconds.items()
                }
            )

    def callback(self) -> Callback:
        """Logs each interval's losses and grid into the run."""
        return LogInterval(self.tracker, self.logged, self.scored, self.paths.samples)

    def finish(
        self,
        generator: Path,
        artifacts: Sequence[Path],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> None:
        """The run's own ``metrics`` (timing, which no DVC output holds; the lowest FCD), the
        ``artifacts``, the ``tags`` that say which generator it is and the one that links it
        to this run; then FINISHED."""
        self.tracker.log_metrics(metrics)
        self.tracker.set_tags({**tags, GENERATOR_TAG: sha256_file(generator)})
        for path in artifacts:
            self.tracker.log_artifact(path)
        self.tracker.finish()

    def _open(self) -> Tracker:
        """Continue the resumed run's MLflow run, or start one with its params, source and
        environment tags and data set."""
        resumed = self.resumed
        if resumed and resumed.run_id:
            tracker = Tracker.resume(resumed.run_id, self.store_uri)
            if tracker is not None:
                tracker.set_tags(process_tags())  # this process carries the resumed run on
                return tracker
        cfg, meta = self.cfg, self.origin.data.meta
        source = meta.get("source", "unknown")
        tracker = Tracker.start(
            cfg.experiment,
            run_name=run_name(f"{source}-{cfg.iterations}it-seed{cfg.seed}"),
            tags={
                **run_tags(ENTRY_POINT, source),
                **process_tags(),
                **environment.as_tags(self.origin.env),
                "data_sha256": meta.get("sha256", ""),
            },
            uri=self.store_uri,
        )
        tracker.log_params(self.origin.params)
        tracker.log_dataset(
            name=source,
            sha256=meta.get("sha256", ""),
            source_uri=self.paths.data.resolve().as_uri(),
            profile={
                "origin": meta.get("description"),
                "train_count": meta.get("train_count"),
                "test_count": meta.get("test_count"),
                "files": meta.get("files", {}),  # MNIST's files: MD5 and SHA-256 each
            },
        )
        return tracker

    def _backfill(self) -> None:
        """Log the history rows and grids that the checkpoint holds but the run does not (a
        crash or a lost server between the two)."""
        tracker, rows = self.tracker, self.history.rows
        self.logged |= tracker.metric_steps(STEP_METRICS[0])
        if self.history.quality:
            self.scored |= tracker.metric_steps(f"{QUALITY_PREFIX}{FCD}")
        for row in self.history.quality:
            if int(row["iteration"]) not in self.scored:
                log_quality(tracker, self.scored, row)
        uploaded = tracker.artifact_names("samples") if rows else set()
        for row in rows:
            iteration = int(row["iteration"])
            if iteration not in self.logged:
                tracker.log_metrics({k: v for k, v in row.items() if k != "iteration"}, iteration)
                self.logged.add(iteration)
            grid = grid_path(self.paths.samples, iteration)
            if grid.name not in uploaded and grid.is_file():
                tracker.log_artifact(grid, "samples")


def quality_summary(
    rows: list[dict[str, float]], probe: QualityProbe | None, seconds: float
) -> dict[str, float]:
    """The run's lowest FCD and its iteration, and what scoring cost: logged, and as the
    run's metrics."""
    lowest = lowest_fcd(rows)
    if probe is None or not lowest:
        return {}
    log.info(
        "quality: lowest fcd %.2f at iteration %d; scoring took %.1f s, %.1f %% of %.0f s",
        lowest["best_fcd"],
        lowest["best_fcd_iteration"],
        probe.seconds,
        100 * probe.seconds / max(seconds, 1e-9),
        seconds,
    )
    return {
        **{f"{QUALITY_PREFIX}{k}": v for k, v in lowest.items()},
        f"{QUALITY_PREFIX}seconds": probe.seconds,
    }


def log_quality(tracker: Tracker, scored: set[int], row: Mapping[str, float]) -> None:
    """One row of the probe's scores, step=iteration, once."""
    iteration = int(row["iteration"])
    scores = {f"{QUALITY_PREFIX}{k}": v for k, v in row.items() if k != "iteration"}
    tracker.log_metrics(scores, step=iteration)
    scored.add(iteration)


class LogInterval(Callback):
    """The losses and the quality scores (step=iteration) and the interval's grid, into the
    MLflow run."""

    def __init__(
        self, tracker: Tracker, logged: set[int], scored: set[int], samples_dir: Path
    ) -> None:
        self.tracker, self.logged, self.scored = tracker, logged, scored
        self.samples_dir = samples_dir

    def on_quality(self, iteration: int, scores: dict[str, float]) -> None:
        if iteration not in self.scored:  # a resumed run may have logged it before the crash
            log_quality(self.tracker, self.scored, {"iteration": iteration, **scores})

    def on_interval(self, iteration: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        if iteration not in self.logged:  # a resumed run may have logged it before the crash
            self.tracker.log_metrics(metrics, step=iteration)
            self.logged.add(iteration)
        self.tracker.log_artifact(grid_path(self.samples_dir, iteration), "samples")
