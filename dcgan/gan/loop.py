"""The loop that runs the step (dcgan.gan.training.GAN): iterations, the history of each
interval, and the callbacks that side effects (grids, logging, checkpoints) hang off. The
library's own callbacks save the grids and the checkpoints; the train stage
(dcgan.pipeline.train) decides which run, and adds MLflow's."""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcgan.config import TrainConfig
from dcgan.contract import FCD, draw_noise
from dcgan.errors import DcganError
from dcgan.files import atomic_path
from dcgan.gan import checkpoint
from dcgan.gan.training import GAN, STEP_METRICS
from dcgan.pictures.plots import grid_path, save_grid

log = logging.getLogger(__name__)

GRID_SIZE = 16  # 4x4 grid of the fixed noise batch
HISTORY_FIELDS = ("iteration", *STEP_METRICS)


@dataclass
class History:
    """What was recorded at each interval; written as reports/train_history.csv."""

    rows: list[dict[str, float]] = field(default_factory=list)
    # The probe's scores at each eval_interval (reports/quality.json, a DVC plot).
    quality: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def after(cls, resumed: checkpoint.Resumed | None) -> History:
        """A new run's empty history, or a resumed run's from its checkpoint."""
        return cls(list(resumed.history), list(resumed.quality)) if resumed else cls()

    def add(self, iteration: int, metrics: dict[str, float]) -> None:
        self.rows.append({"iteration": iteration, **metrics})

    def add_quality(self, iteration: int, scores: dict[str, float]) -> None:
        self.quality.append({"iteration": iteration, **scores})

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows]

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(
                    {
                        k: (int(row[k]) if k == "iteration" else f"{row[k]:.6f}")
                        for k in HISTORY_FIELDS
                    }
                )


class Callback:
    """What :func:`train_loop` calls besides the maths; override what you need."""

    def on_interval(self, iteration: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        """Every ``sample_interval`` iterations and at the last: the losses just recorded and
        G's images (16, 28, 28, 1) of the fixed noise batch."""

    def on_quality(self, iteration: int, scores: dict[str, float]) -> None:
        """Every ``eval_interval`` iterations and at the last, with a probe: its scores of G."""

    def on_checkpoint(self, iteration: int, history: History) -> None:
        """Every ``checkpoint_interval`` iterations, except the last: a point to resume from."""


def fixed_noise(cfg: TrainConfig) -> np.ndarray:
    """The noise batch behind every progress grid (16, z_dim), the same at every interval."""
    return draw_noise(GRID_SIZE, cfg.z_dim, cfg.seed)


def train_loop(
    gan: GAN,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
    *,
    start: int = 1,
    history: History | None = None,
    probe: Callable[[], dict[str, float]] | None = None,
) -> History:
    """Run iterations ``start``..``cfg.iterations``; at every sample interval and at the last
    iteration, record the losses in the history and call the callbacks. With a ``probe``
    (dcgan.quality.probe), also score G every ``cfg.eval_interval`` iterations and at the last.

    ``progress``: True/False forces the progress bar on/off; None shows it on a terminal only
    (the interval lines in the log say the same for CI logs).
    """
    # Over 60 lines: the progress bar, the divergence check and the interval's log line are
    # what a user watches, and they read best beside the loop they describe.
    from tqdm.auto import tqdm

    cfg = gan.cfg
    history = history if history is not None else History()
    z_fixed = fixed_noise(cfg)
    bar = tqdm(
        range(start, cfg.iterations + 1),
        desc="train",
        unit="it",
        initial=start - 1,
        total=cfg.iterations,
        disable=None if progress is None else not progress,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    clock = time.perf_counter()
    for iteration in bar:
        metrics = gan.train_step()
        last = iteration == cfg.iterations
        sampled = iteration % cfg.sample_interval == 0 or last
        if sampled:
            values = {k: float(v) for k, v in metrics.items()}
            _check_finite(iteration, values, "losses")
        # Scored before any callback runs: a tracker that fails in this interval's callbacks
        # then finds the scores in the history it checkpoints, and a rerun logs them.
        scores = _score(probe, iteration, history) if _scoring(probe, cfg, iteration) else None
        if sampled:
            history.add(iteration, values)
            done = iteration - start + 1
            per_it = (time.perf_counter() - clock) / done
            log.info(
                "iteration %d/%d  d_loss %.4f  d_accuracy %.2f%%  g_loss %.4f  "
                "(%.3f s/it, ETA %.0f s)",
                iteration,
                cfg.iterations,
                values["d_loss"],
                100 * values["d_accuracy"],
                values["g_loss"],
                per_it,
                per_it * (cfg.iterations - iteration),
            )
            bar.set_postfix(
                d_loss=f"{values['d_loss']:.3f}",
                d_acc=f"{values['d_accuracy']:.0%}",
                g_loss=f"{values['g_loss']:.3f}",
                refresh=False,
            )
            if callbacks:
                grid = gan.generate(z_fixed)
                for callback in callbacks:
                    callback.on_interval(iteration, values, grid)
        if scores is not None:
            for callback in callbacks:
                callback.on_quality(iteration, scores)
        if iteration % cfg.checkpoint_interval == 0 and not last:
            for callback in callbacks:
                callback.on_checkpoint(iteration, history)
    bar.close()
    return history


def _scoring(probe: Callable[[], dict[str, float]] | None, cfg: TrainConfig, i: int) -> bool:
    """Every ``eval_interval`` iterations and at the last, when there is a probe."""
    return (
        probe is not None
        and cfg.eval_interval > 0
        and (i % cfg.eval_interval == 0 or i == cfg.iterations)
    )


def _check_finite(iteration: int, values: dict[str, float], what: str) -> None:
    """A diverged run stops here, before anything of it is scored, saved or logged."""
    if not all(np.isfinite(v) for v in values.values()):
        raise DcganError(
            f"training diverged: non-finite {what} at iteration {iteration} "
            f"({', '.join(f'{k} {v:g}' for k, v in values.items())}); nothing is "
            "saved. Lower train.g_learning_rate / d_learning_rate, or check the data"
        )


def _score(probe: Callable[[], dict[str, float]], iteration: int, history: History) -> dict:
    """The probe's scores, into the history and the log."""
    scores = probe()
    _check_finite(iteration, scores, "quality scores")  # G's images are not finite
    history.add_quality(iteration, scores)
    log.info(
        "iteration %d  fcd %.2f  mnist_score %.2f  class shares %.1f-%.1f%%",
        iteration,
        scores[FCD],
        scores["mnist_score"],
        100 * scores["min_class_share"],
        100 * scores["max_class_share"],
    )
    return scores


class SaveGrid(Callback):
    """reports/samples/iter_NNNNNN.png: G's images of the fixed noise batch at each interval."""

    def __init__(self, samples_dir: Path) -> None:
        self.samples_dir = samples_dir

    def on_interval(self, iteration: int, metrics: dict[str, float], grid: np.ndarray) -> None:
        save_grid(grid, grid_path(self.samples_dir, iteration))


class SaveCheckpoint(Callback):
    """checkpoints/train: every variable, the history, the grids so far and the run id."""

    def __init__(
        self, folder: str | os.PathLike[str], gan: GAN, run_id: str, identity: str, samples: Path
    ) -> None:
        self.folder, self.gan, self.run_id = folder, gan, run_id
        self.identity, self.samples = identity, samples

    def on_checkpoint(self, iteration: int, history: History) -> None:
        checkpoint.save(
            self.folder,
            self.gan.state_variables(),
            iteration=iteration,
            history=history.rows,
            quality=history.quality,
            run_id=self.run_id,
            fingerprint=self.identity,
            samples_dir=self.samples,
        )
