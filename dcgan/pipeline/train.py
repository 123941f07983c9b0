"""The train stage: the book's DCGAN on the prepared data, recorded in one MLflow run.

Read :func:`run` top to bottom:

1. load the prepared data and check the run fits in memory; the params and the data's
   checksum fingerprint the run;
2. build the GAN and resume from a checkpoint of the same fingerprint, if a crash left one;
3. open the MLflow run, a :class:`~dcgan.pipeline.training_run.TrainingRun` (a resumed run
   continues its own), and log what the crash lost;
4. train, with callbacks at each interval: the progress grid, the metrics in MLflow and,
   every ``checkpoint_interval`` iterations, a checkpoint; with ``train.keep: best``, each
   new lowest FCD keeps a copy of the generator (dcgan.gan.shipped);
5. save the outputs (the generator shipped: G, its average or the copy kept), discard the
   checkpoint, and close the run, tagged with the SHA-256 of
   the generator it produced (the outputs themselves name no run: see dcgan.tracking.lineage).

What params.yaml may not do meanwhile is dcgan.pipeline.params_guard's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

from dcgan.config import TrainConfig, flat_params, last_only, params_error
from dcgan.data import Prepared, load_prepared
from dcgan.files import write_json
from dcgan.gan import checkpoint
from dcgan.gan.loop import Callback, History, SaveCheckpoint, SaveGrid, train_loop
from dcgan.gan.shipped import AVERAGED, LIVE, Best, lowest_fcd
from dcgan.gan.training import GAN, STEP_METRICS
from dcgan.machine import devices, environment, memory, precision
from dcgan.pictures.plots import save_history_plot
from dcgan.pipeline.params_guard import WatchParams, check_params_unchanged
from dcgan.pipeline.paths import TrainPaths
from dcgan.pipeline.training_run import Origin, TrainingRun, quality_summary
from dcgan.quality.probe import for_training
from dcgan.saving import save_model
from dcgan.tracking.store import check_tracking_store

log = logging.getLogger(__name__)


def run(
    cfg: TrainConfig,
    paths: TrainPaths,
    *,
    progress: bool | None = None,
    store_uri: str | None = None,
) -> dict[str, float]:
    """Train, write the outputs ``paths`` names, record the run in MLflow; returns the final
    losses.

    With ``paths.checkpoints``, a checkpoint is written every ``cfg.checkpoint_interval``
    iterations and one of an unfinished run with the same params, data and environment is
    resumed (same MLflow run, identical final weights). ``paths.lock`` is the uv.lock that
    installed this environment: its SHA-256, the key packages' versions and the device
    (``cpu``, or the GPUs) go into training.json and the MLflow run.
    ``paths.params``, the file ``cfg`` was read from, is read again at every interval and
    before the outputs are written: if its train block changed meanwhile (another ``dvc exp
    run`` in the same clone), no model is written and the stage fails, so dvc.lock never
    pairs these models with params that did not make them.
    ``paths.classifier``, the classifier stage's model, scores G every ``cfg.eval_interval``
    iterations (dcgan.quality.probe); it is needed unless that is 0.
    ``store_uri`` is a tracking store already checked (the stage checks it before TensorFlow
    loads); without it the store is resolved and checked here.
    """
    # Over 60 lines with its docstring: the stage's story in order, as flax's
    # train_and_evaluate; each step it names is a function below or a module of its own.
    data = _load_data(cfg, paths.data)
    # The software (lock, versions) and the hardware (cpu, or the GPUs the strategy uses).
    env = {**environment.describe(paths.lock), **devices.describe(cfg.strategy, cfg.devices)}
    environment.warn_on_drift(paths.lock, env)
    origin = Origin({**data.meta.get("params", {}), **flat_params("train", cfg)}, env, data)
    store_uri = store_uri or check_tracking_store()

    if longer := last_only(cfg):  # a short run just trains: -S train.iterations=100
        log.info(
            "%s: longer than the %d-iteration run, so at its last iteration only",
            " and ".join(longer),
            cfg.iterations,
        )
    _clear(paths.samples)
    choice, gan, identity, resumed = _build(cfg, origin, paths)
    history = History.after(resumed)
    if gan.best is not None:
        gan.best.resumed(history.quality)  # the checkpoint restored its weights
    # With an average, the run's quality is the average's; G's own is scored beside it.
    live = gan.generator if gan.averaged is not None else None
    probe = for_training(cfg, gan.scored_generator, paths.classifier, data.x_test, live)
    with TrainingRun(
        cfg,
        paths,
        origin,
        store_uri,
        resumed,
        history,
        checkpoint_now=lambda run_id: _checkpoint_now(paths, gan, run_id, identity, history),
    ) as record:
        record.log_precision(choice)
        callbacks: list[Callback] = [
            # First: the copy is kept before a tracker that fails can checkpoint the state.
            *([KeepBest(gan.best)] if gan.best is not None else []),
            *([WatchParams(cfg, paths.params)] if paths.params is not None else []),
            SaveGrid(paths.samples),
            record.callback(),
        ]
        if paths.checkpoints is not None:
            callbacks.append(
                SaveCheckpoint(paths.checkpoints, gan, record.run_id, identity, paths.samples)
            )
        start, cpu_start = time.perf_counter(), time.process_time()
        train_loop(
            gan,
            callbacks,
            progress=progress,
            start=resumed.iteration + 1 if resumed else 1,
            history=history,
            probe=probe,
        )
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        done = cfg.iterations - (resumed.iteration if resumed else 0)
        if paths.params is not None:
            check_params_unchanged(cfg, paths.params)
        shipped = shipped_record(gan)
        final = _save_outputs(gan, choice, history, origin, paths)
        record.finish(
            paths.generator,
            [paths.losses, paths.history, paths.quality],
            {
                "seconds_per_iteration": seconds / max(done, 1),
                # Every thread's CPU time: it compares recipes on a shared machine.
                "cpu_seconds_per_iteration": cpu_seconds / max(done, 1),
                **quality_summary(history.quality, probe, seconds),
                "generator_iteration": shipped["iteration"],
            },
            {f"generator_{k}": str(v) for k, v in shipped.items()},
        )
        if paths.checkpoints is not None:  # only now: a rerun after a failed close resumes
            checkpoint.discard(paths.checkpoints)
    log.info(
        "trained to iteration %d (%d this run) in %.0f s (%.3f s/iteration): %s",
        cfg.iterations,
        done,
        seconds,
        seconds / max(done, 1),
        final,
    )
    return final


class KeepBest(Callback):
    """``train.keep: best``: every score offers the scored generator to the copy kept."""

    def __init__(self, best: Best) -> None:
        self.best = best

    def on_quality(self, iteration: int, scores: dict[str, float]) -> None:
        if self.best.offer(iteration, scores):
            log.info("keeping the generator of iteration %d (fcd %.2f)", iteration, self.best.fcd)


# -- the steps --------------------------------------------------------------------------------


def _load_data(cfg: TrainConfig, data_dir: str | os.PathLike[str]) -> Prepared:
    """The prepared data, once the run is known to fit in memory and in the data."""
    data = load_prepared(data_dir)
    memory.check(memory.train(cfg, len(data.x_train)), "train")
    if len(data.x_train) < cfg.batch_size:  # batches are drawn with replacement: say so
        raise params_error(
            f"train.batch_size={cfg.batch_size} is more than the {len(data.x_train)} training "
            f"images in {data_dir}; lower it, or prepare at least one batch of images"
        )
    return data


def _build(
    cfg: TrainConfig, origin: Origin, paths: TrainPaths
) -> tuple[precision.Choice, GAN, str, checkpoint.Resumed | None]:
    """The precision, the GAN in it, the run's fingerprint, and the checkpoint resumed (if
    a crash left one of the same fingerprint)."""
    # "auto" becomes the fastest recipe on this device, measured: float32 or mixed_bfloat16
    # on a CPU; on a GPU also mixed_float16, each with or without XLA.
    choice = precision.resolve(cfg, device=origin.env.get(devices.DEVICE, devices.CPU))
    resolved_cfg = dataclasses.replace(cfg, precision=choice.precision)
    gan = GAN(resolved_cfg, origin.data.x_train, jit_compile=choice.jit_compile)
    xla_note = " with XLA" if choice.jit_compile else ""
    log.info("training in %s%s (%s)", choice.precision, xla_note, choice.reason)
    # A checkpoint made in one precision must not resume in another (auto may resolve
    # differently on another machine), nor one made with XLA without it (a key only then).
    xla = {"train.jit_compile_resolved": True} if choice.jit_compile else {}
    resolved = {"train.precision_resolved": gan.precision, **xla}
    identity = _fingerprint(
        {**origin.params, **resolved, **environment.as_tags(origin.env)}, origin.data
    )
    resumed = (
        checkpoint.restore(paths.checkpoints, gan.state_variables(), identity, paths.samples)
        if paths.checkpoints is not None
        else None
    )
    return choice, gan, identity, resumed


def _checkpoint_now(
    paths: TrainPaths, gan: GAN, run_id: str, identity: str, history: History
) -> str:
    """Checkpoint the state at the last recorded interval; says what a rerun will do."""
    if paths.checkpoints is None:
        return "Nothing was saved (no checkpoint folder); rerun once the store is back"
    if not history.rows and not history.quality:
        return "No iteration was trained; rerun `dvc repro` once the store is back"
    # The state is that of the last iteration recorded, by a loss row or a score.
    iteration = int(max(row["iteration"] for row in history.rows[-1:] + history.quality[-1:]))
    checkpoint.save(
        paths.checkpoints,
        gan.state_variables(),
        iteration=iteration,
        history=history.rows,
        run_id=run_id,
        fingerprint=identity,
        samples_dir=paths.samples,
        quality=history.quality,
    )
    return (
        f"Training is checkpointed at iteration {iteration} in {paths.checkpoints}: rerun "
        "`dvc repro` once the store is back, and the same MLflow run continues from there"
    )


def _fingerprint(params: dict[str, Any], data: Prepared) -> str:
    """What a checkpoint must match to be resumed: every param that changes what is computed
    (``checkpoint_interval`` only changes when checkpoints are written) and the data."""
    return checkpoint.fingerprint(
        {
            **{k: v for k, v in params.items() if k != "train.checkpoint_interval"},
            "data.sha256": data.meta.get("sha256"),
        }
    )


def _clear(samples_dir: Path) -> None:
    samples_dir.mkdir(parents=True, exist_ok=True)
    for stale in samples_dir.glob("*.png"):
        stale.unlink()


def _save_outputs(
    gan: GAN, choice: precision.Choice, history: History, origin: Origin, paths: TrainPaths
) -> dict[str, float]:
    """The stage's DVC outputs; none holds a run id, a time or a host name."""
    save_model(gan.shipped_generator, paths.generator)
    save_model(gan.discriminator, paths.discriminator)
    history.write_csv(paths.history)
    save_history_plot(
        history.column("iteration"),
        history.column("d_loss"),
        history.column("g_loss"),
        history.column("d_accuracy"),
        paths.losses,
    )
    final = {k: history.rows[-1][k] for k in STEP_METRICS}
    write_json(paths.quality, history.quality)  # [] with eval_interval 0: DVC needs the file
    lowest = lowest_fcd(history.quality)  # over train.eval_samples, not the evaluate stage's count
    shipped = shipped_record(gan)
    write_json(paths.metrics, {**final, **lowest, "generator_iteration": shipped["iteration"]})
    # What made the models; their own files carry what they are (z_dim: the input shape).
    record: dict[str, Any] = {
        "params": origin.params,
        "precision": choice.precision,  # what train.precision (e.g. auto) resolved to
        "generator": shipped,
    }
    if choice.jit_compile:  # auto on a GPU measured XLA faster (absent: not compiled by XLA)
        record["jit_compile"] = True
    record.update(lowest)
    if choice.measured:  # the cached figures, not when they were taken: same bytes next run
        record["precision_measured"] = {
            "seconds_per_iteration": choice.seconds,
            "on": choice.on,
        }
    record["data"] = {k: origin.data.meta.get(k) for k in ("source", "description", "sha256")}
    record["environment"] = origin.env  # the lock's SHA-256 and the key packages' versions
    write_json(paths.training, record)
    return final


def shipped_record(gan: GAN) -> dict[str, Any]:
    """Which generator models/generator.keras is: ``kind`` live (G) or averaged (its EMA),
    ``keep`` last or best, and the ``iteration`` its weights are of."""
    best = gan.best
    return {
        "kind": AVERAGED if gan.averaged is not None else LIVE,
        "keep": gan.cfg.keep,
        "iteration": best.iteration if best is not None else gan.cfg.iterations,
    }
