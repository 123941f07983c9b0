"""The book's training loop as one compiled TensorFlow step, and the train stage around it.

One iteration, exactly as in *GANs in Action*, chapter 4:

1. draw ``batch_size`` real images at random (with replacement) and z ~ N(0, 1);
2. generate a fake batch with G in inference mode (the book calls ``generator.predict``);
3. one Adam step of D on the real batch (label 1), then one on the fake batch (label 0):
   two separate batches, so D's BatchNorm sees them separately; D's loss and accuracy are
   the mean of the two;
4. draw fresh z and take one Adam step of G through D (label 1) with D untouched.

The book freezes D with ``discriminator.trainable = False`` before compiling the combined
model. In Keras 3 that flag also stops ``discriminator.train_on_batch`` from training D,
so we do not port it: the G step differentiates with respect to G's variables only, and
runs D without updating its BatchNorm statistics (D is frozen). As in the book's
Keras 2 code, D's BatchNorm normalises with the batch statistics of the fake batch there.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dcgan import checkpoint
from dcgan.config import TrainConfig, flat_params
from dcgan.data import load_prepared
from dcgan.errors import DcganError
from dcgan.files import atomic_path, sha256_file, write_json
from dcgan.models import build_models, save_model, seed_everything, train_forward
from dcgan.plots import save_grid, save_history_plot
from dcgan.tracking import GENERATOR_TAG, Tracker, check_tracking_store, run_tags

log = logging.getLogger(__name__)

GRID_SIZE = 16  # 4x4 grid of the fixed noise batch
HISTORY_FIELDS = ("iteration", "d_loss", "d_accuracy", "g_loss")


def bce(labels: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
    """Mean binary cross-entropy, as Keras computes it (probabilities clipped to [1e-7, 1 - 1e-7]).

    Not keras.losses.BinaryCrossentropy: under a multi-device strategy that object silently
    divides by the number of replicas, and we scale explicitly where the gradients are taken.
    """
    return tf.reduce_mean(keras.losses.binary_crossentropy(labels, probs))


def make_strategy(name: str, devices: str = "") -> tf.distribute.Strategy:
    """``default``: one device. ``mirrored``: MirroredStrategy over ``devices`` (comma-separated,
    e.g. "GPU:0,GPU:1"), or over every visible GPU when empty."""
    if name == "default":
        return tf.distribute.get_strategy()
    listed = [d.strip() for d in devices.split(",") if d.strip()] or None
    try:
        return tf.distribute.MirroredStrategy(devices=listed)
    except (ValueError, RuntimeError) as exc:
        raise DcganError(
            f"params.yaml: train.devices={devices!r} cannot be used ({exc}); list "
            "visible devices such as GPU:0,GPU:1, or leave it empty"
        ) from None


def fixed_noise(z_dim: int, seed: int, n: int = GRID_SIZE) -> np.ndarray:
    """The noise batch behind every progress grid, so grids are comparable across intervals."""
    return np.random.default_rng(seed).standard_normal((n, z_dim)).astype(np.float32)


class GAN:
    """G, D, their optimizers, the training images on the device and one seeded RNG."""

    def __init__(self, cfg: TrainConfig, images: np.ndarray) -> None:
        if images.ndim != 4 or images.shape[1:] != (28, 28, 1) or len(images) == 0:
            raise ValueError(f"expected images of shape (N, 28, 28, 1), got {images.shape}")
        self.cfg = cfg
        seed_everything(cfg.seed)
        self.strategy = make_strategy(cfg.strategy, cfg.devices)
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % self.replicas:
            raise DcganError(
                f"params.yaml: train.batch_size={cfg.batch_size} does not split "
                f"evenly over {self.replicas} devices; use a multiple of "
                f"{self.replicas}"
            )
        with self.strategy.scope():
            self.generator, self.discriminator = build_models(
                cfg.z_dim, cfg.leaky_slope, cfg.precision, synchronized_bn=self.replicas > 1
            )
            self.g_optimizer = keras.optimizers.Adam(cfg.g_learning_rate, cfg.beta_1, cfg.beta_2)
            self.d_optimizer = keras.optimizers.Adam(cfg.d_learning_rate, cfg.beta_1, cfg.beta_2)
            # Build optimizer slots now: variables cannot be created inside the compiled step.
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self.images = tf.constant(images, dtype=tf.float32)  # (N, 28, 28, 1), stays on device
        self.rng = tf.random.Generator.from_seed(cfg.seed)
        self._compiled_step = tf.function(self._step, reduce_retracing=True)

    # -- the maths -------------------------------------------------------------------------

    def _d_update(self, images: tf.Tensor, label: float) -> tuple[tf.Tensor, tf.Tensor]:
        """One Adam step of D on one batch; returns (loss, accuracy) before the step."""
        d = self.discriminator
        labels = tf.fill([tf.shape(images)[0], 1], label)
        with tf.GradientTape() as tape:
            pred = tf.cast(train_forward(d, images), tf.float32)  # (B, 1)
            loss = bce(labels, pred)  # mean over this replica's share
            # Keras sums gradients over replicas: scale so the sum is the global-batch mean.
            scaled = loss / self.replicas
        grads = tape.gradient(scaled, d.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, d.trainable_variables, strict=True))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(pred > 0.5, labels > 0.5), tf.float32))
        return loss, accuracy

    def _g_update(self, z: tf.Tensor) -> tf.Tensor:
        """One Adam step of G through D; D's weights and BatchNorm statistics stay untouched."""
        g, d = self.generator, self.discriminator
        labels = tf.ones([tf.shape(z)[0], 1])
        with tf.GradientTape() as tape:
            fake = train_forward(g, z)  # (B, 28, 28, 1); updates G's BatchNorm statistics
            # D is frozen: its BatchNorm normalises with batch statistics, but keeps its own.
            pred = train_forward(d, fake, update_statistics=False)
            loss = bce(labels, tf.cast(pred, tf.float32))
            scaled = loss / self.replicas
        grads = tape.gradient(scaled, g.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, g.trainable_variables, strict=True))
        return loss

    def _replica_step(self, real: tf.Tensor, z: tf.Tensor, z_g: tf.Tensor) -> dict[str, tf.Tensor]:
        """The iteration on this replica's share of the global batch (all of it on one device)."""
        if self.replicas > 1:
            # Not on one device: the slice there trips Grappler's remapper (a logged error and
            # a skipped optimisation pass) for nothing.
            share = self.cfg.batch_size // self.replicas
            i = tf.distribute.get_replica_context().replica_id_in_sync_group
            real, z, z_g = (t[i * share : (i + 1) * share] for t in (real, z, z_g))
        fake = self.generator(z, training=False)  # the book's generator.predict(z)
        d_loss_real, d_acc_real = self._d_update(real, 1.0)
        d_loss_fake, d_acc_fake = self._d_update(fake, 0.0)
        g_loss = self._g_update(z_g)
        return {
            "d_loss": 0.5 * (d_loss_real + d_loss_fake),
            "d_accuracy": 0.5 * (d_acc_real + d_acc_fake),
            "g_loss": g_loss,
        }

    def _step(self) -> dict[str, tf.Tensor]:
        cfg = self.cfg
        # Every draw is global and made once, so a run's data and noise do not depend on how
        # many devices share it.
        n = tf.shape(self.images, out_type=tf.int64)[0]
        idx = self.rng.uniform([cfg.batch_size], 0, n, dtype=tf.int64)  # with replacement
        real = tf.gather(self.images, idx)  # (B, 28, 28, 1)
        z = self.rng.normal([cfg.batch_size, cfg.z_dim])  # (B, z_dim) for D's fake batch
        z_g = self.rng.normal([cfg.batch_size, cfg.z_dim])  # (B, z_dim) fresh, for G's step
        per_replica = self.strategy.run(self._replica_step, args=(real, z, z_g))
        mean = tf.distribute.ReduceOp.MEAN  # equal shares: the mean of means is the global mean
        return {k: self.strategy.reduce(mean, v, axis=None) for k, v in per_replica.items()}

    # -- the public surface ----------------------------------------------------------------

    def train_step(self) -> dict[str, tf.Tensor]:
        """One iteration (two D steps, one G step), compiled; returns d_loss, d_accuracy, g_loss."""
        return self._compiled_step()

    def d_step(self, images: tf.Tensor, label: float) -> tuple[tf.Tensor, tf.Tensor]:
        """One discriminator step alone (for tests and benchmarks)."""
        return tf.function(self._d_update)(images, label)

    def g_step(self, z: tf.Tensor) -> tf.Tensor:
        """One generator step alone (for tests and benchmarks)."""
        return tf.function(self._g_update)(z)

    @property
    def trace_count(self) -> int:
        """How often the compiled step was traced; more than one means retracing."""
        return self._compiled_step.experimental_get_tracing_count()

    def state_variables(self) -> dict[str, Any]:
        """Every variable the next iteration reads, by a stable name (for checkpoints)."""
        groups = {
            "generator": self.generator.weights,
            "discriminator": self.discriminator.weights,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
        }
        state = {
            f"{group}:{i:03d}:{v.path.replace('/', '.')}": v
            for group, variables in groups.items()
            for i, v in enumerate(variables)
        }
        state["rng:state"] = self.rng.state
        return state

    def generate(self, z: np.ndarray) -> np.ndarray:
        """Images (N, 28, 28, 1) in [-1, 1] from G in inference mode."""
        out = self.generator(tf.constant(z, tf.float32), training=False)
        return tf.cast(out, tf.float32).numpy()


@dataclass
class History:
    """What was recorded at each interval; written as reports/train_history.csv."""

    rows: list[dict[str, float]] = field(default_factory=list)

    def add(self, iteration: int, metrics: dict[str, float]) -> None:
        self.rows.append({"iteration": iteration, **metrics})

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


IntervalCallback = Callable[[int, dict[str, float], np.ndarray], None]
CheckpointCallback = Callable[[int, "History"], None]


def train_loop(
    gan: GAN,
    on_interval: IntervalCallback | None = None,
    progress: bool | None = None,
    *,
    start: int = 1,
    history: History | None = None,
    on_checkpoint: CheckpointCallback | None = None,
) -> History:
    """Run iterations ``start``..``cfg.iterations``. At every sample interval and at the last
    iteration, record the losses and hand them and a grid of the fixed noise batch to
    ``on_interval``; every ``cfg.checkpoint_interval`` iterations call ``on_checkpoint``.

    ``progress``: True/False forces the progress bar on/off; None shows it on a terminal only
    (the interval lines in the log say the same for CI logs).
    """
    from tqdm.auto import tqdm

    cfg = gan.cfg
    history = history if history is not None else History()
    z_fixed = fixed_noise(cfg.z_dim, cfg.seed)
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
        if iteration % cfg.sample_interval == 0 or last:
            values = {k: float(v) for k, v in metrics.items()}
            if not all(np.isfinite(v) for v in values.values()):
                log.warning("non-finite losses at iteration %d: %s", iteration, values)
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
            if on_interval is not None:
                on_interval(iteration, values, gan.generate(z_fixed))
        if on_checkpoint is not None and iteration % cfg.checkpoint_interval == 0 and not last:
            on_checkpoint(iteration, history)
    bar.close()
    return history


def train(
    cfg: TrainConfig,
    data_dir: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    reports_dir: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """The train stage: train on the prepared data, save models, history, grids and plots,
    and record everything in one MLflow run. Returns the final metrics.

    With ``checkpoint_dir``, a checkpoint is written every ``cfg.checkpoint_interval``
    iterations, and a checkpoint of an unfinished run with the same params and data is
    resumed (same MLflow run, identical final weights); it is discarded once the outputs
    are written. The outputs hold no run id and no timing, so the same params and data give
    the same bytes; the run is tagged with the generator's SHA-256 instead (dcgan.tracking).
    """
    models_dir, reports_dir = Path(models_dir), Path(reports_dir)
    data = load_prepared(data_dir)
    samples_dir = reports_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    for stale in samples_dir.glob("*.png"):
        stale.unlink()

    params = {**data.meta.get("params", {}), **flat_params("train", cfg)}
    # checkpoint_interval changes when checkpoints are written, not what is computed.
    identity = checkpoint.fingerprint(
        {
            **{k: v for k, v in params.items() if k != "train.checkpoint_interval"},
            "data.sha256": data.meta.get("sha256"),
        }
    )
    check_tracking_store()
    gan = GAN(cfg, data.x_train)
    resumed = (
        checkpoint.restore(checkpoint_dir, gan.state_variables(), identity, samples_dir)
        if checkpoint_dir is not None
        else None
    )
    tracker = Tracker.resume(resumed.run_id) if resumed and resumed.run_id else None
    history = History(list(resumed.history) if resumed else [])
    if tracker is None:
        tracker = Tracker.start(cfg.experiment, tags=run_tags(data.meta.get("source")))
        tracker.log_params(params)
    logged = tracker.metric_steps("d_loss")
    for row in history.rows:  # rows checkpointed but not yet logged when the run stopped
        if row["iteration"] not in logged:
            tracker.log_metrics(
                {k: v for k, v in row.items() if k != "iteration"}, step=int(row["iteration"])
            )
            logged.add(row["iteration"])
    try:

        def on_interval(iteration: int, metrics: dict[str, float], grid: np.ndarray) -> None:
            path = save_grid(grid, samples_dir / f"iter_{iteration:06d}.png")
            if iteration not in logged:  # a resumed run may have logged it before the crash
                tracker.log_metrics(metrics, step=iteration)
            tracker.log_artifact(path, "samples")

        def on_checkpoint(iteration: int, history: History) -> None:
            checkpoint.save(
                checkpoint_dir,
                gan.state_variables(),
                iteration=iteration,
                history=history.rows,
                run_id=tracker.run_id,
                fingerprint=identity,
                samples_dir=samples_dir,
            )

        start = time.perf_counter()
        history = train_loop(
            gan,
            on_interval,
            progress=progress,
            start=resumed.iteration + 1 if resumed else 1,
            history=history,
            on_checkpoint=on_checkpoint if checkpoint_dir is not None else None,
        )
        seconds = time.perf_counter() - start
        done = cfg.iterations - (resumed.iteration if resumed else 0)

        for model, name in ((gan.generator, "generator"), (gan.discriminator, "discriminator")):
            save_model(model, models_dir / f"{name}.keras")
        history.write_csv(reports_dir / "train_history.csv")
        plot = save_history_plot(
            history.column("iteration"),
            history.column("d_loss"),
            history.column("g_loss"),
            history.column("d_accuracy"),
            reports_dir / "losses.png",
        )
        final = {k: history.rows[-1][k] for k in ("d_loss", "d_accuracy", "g_loss")}
        write_json(reports_dir / "train_metrics.json", final)
        write_json(
            models_dir / "training.json",
            {
                "z_dim": cfg.z_dim,
                "image_shape": [28, 28, 1],
                "output_range": [-1.0, 1.0],
                "params": params,
                "data": {k: data.meta.get(k) for k in ("source", "description", "sha256")},
            },
        )
        if checkpoint_dir is not None:
            checkpoint.discard(checkpoint_dir)
        # Wall-clock figures belong to the run's record, not to a hashed output.
        seconds_per_iteration = seconds / max(done, 1)
        tracker.log_metrics({"seconds_per_iteration": seconds_per_iteration})
        tracker.set_tags({GENERATOR_TAG: sha256_file(models_dir / "generator.keras")})
        tracker.log_artifact(plot)
        tracker.log_artifact(reports_dir / "train_history.csv")
        tracker.finish()
    except Exception:
        tracker.finish("FAILED")
        raise
    log.info(
        "trained to iteration %d (%d this run) in %.0f s (%.3f s/iteration): %s",
        cfg.iterations,
        done,
        seconds,
        seconds_per_iteration,
        final,
    )
    return final
