"""The book's training iteration as one compiled TensorFlow step (:class:`GAN`); the loop that
runs it is dcgan.gan.loop.

One iteration, exactly as in *GANs in Action*, chapter 4:

1. draw ``batch_size`` real images at random (with replacement) and z ~ N(0, 1);
2. generate a fake batch with G in inference mode (the book calls ``generator.predict``;
   ``train.d_fakes: training`` uses G in training mode instead);
3. one Adam step of D on the real batch (label 1, or ``1 - train.label_smoothing``), then
   one on the fake batch (label 0):
   two separate batches, so D's BatchNorm sees them separately; D's loss and accuracy are
   the mean of the two;
4. draw fresh z and take one Adam step of G through D (label 1) with D untouched;
5. with ``train.ema_decay``, update the average of G's weights (dcgan.gan.shipped), which
   training never reads.

``train.lr_decay_from`` lets both learning rates fall linearly to zero over the end of the
run (:class:`LinearDecay`); 0 keeps them constant, as the book.

The book freezes D with ``discriminator.trainable = False`` before compiling the combined
model. In Keras 3 that flag also stops ``discriminator.train_on_batch`` from training D,
so we do not port it: the G step differentiates with respect to G's variables only, and
runs D without updating its BatchNorm statistics (D is frozen). As in the book's
Keras 2 code, D's BatchNorm normalises with the batch statistics of the fake batch there.

"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dcgan.config import AUTO, FLOAT16, KEEP_BEST, TrainConfig, listed_devices, params_error
from dcgan.contract import IMAGE_SHAPE
from dcgan.gan.determinism import seed_everything
from dcgan.gan.models import build_models, train_forward
from dcgan.gan.shipped import Averaged, Best

log = logging.getLogger(__name__)

# What each step reports: the names of the history's columns, the MLflow metrics and
# metrics.json's keys.
STEP_METRICS = ("d_loss", "d_accuracy", "g_loss")


def bce(labels: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
    """Mean binary cross-entropy, as Keras computes it (probabilities clipped to [1e-7, 1 - 1e-7]).

    Not keras.losses.BinaryCrossentropy: under a multi-device strategy that object silently
    divides by the number of replicas, and we scale explicitly where the gradients are taken.
    """
    return tf.reduce_mean(keras.losses.binary_crossentropy(labels, probs))


class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``rate`` until iteration ``start``, then linearly down to 0 at iteration ``total``
    (torch-fidelity's SNGAN example: ``1 - step / total`` over the decaying part).

    The optimizer passes its own step count, 0-based; D's optimizer steps twice per
    iteration (real, fake), so ``steps_per_iteration`` maps it back to the iteration.
    """

    def __init__(self, rate: float, start: int, total: int, steps_per_iteration: int) -> None:
        self.rate, self.start, self.total = rate, start, total
        self.steps_per_iteration = steps_per_iteration

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        iteration = tf.cast(step // self.steps_per_iteration + 1, tf.float32)  # 1-based
        left = (self.total - iteration) / max(self.total - self.start, 1)
        return self.rate * tf.clip_by_value(left, 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "start": self.start,
            "total": self.total,
            "steps_per_iteration": self.steps_per_iteration,
        }


def make_strategy(name: str, devices: str = "") -> tf.distribute.Strategy:
    """``default``: one device. ``mirrored``: MirroredStrategy over ``devices`` (comma-separated,
    e.g. "GPU:0,GPU:1"), or over every visible GPU when empty."""
    if name == "default":
        return tf.distribute.get_strategy()
    listed = listed_devices(devices) or None
    # MirroredStrategy takes a device this machine lacks and soft placement quietly runs on
    # the CPU instead; say so before training.
    visible = [d.name.split("device:")[-1] for d in tf.config.list_logical_devices()]
    missing = [d for d in listed or [] if d not in visible]
    if missing:
        raise params_error(
            f"train.devices={devices!r} cannot be used ({missing[0]} is not on "
            f"this machine, which has {', '.join(visible)}); list visible devices such as "
            "GPU:0,GPU:1, or leave it empty"
        )
    try:
        return tf.distribute.MirroredStrategy(devices=listed)
    except (ValueError, RuntimeError) as exc:
        raise params_error(
            f"train.devices={devices!r} cannot be used ({exc}); list "
            "visible devices such as GPU:0,GPU:1, or leave it empty"
        ) from None


class GAN:
    """G, D, their optimizers, the training images on the device and one seeded RNG."""

    def __init__(self, cfg: TrainConfig, images: np.ndarray, jit_compile: bool = False) -> None:
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
            raise ValueError(f"expected images of shape (N, 28, 28, 1), got {images.shape}")
        if cfg.precision == AUTO:  # the train stage times it (dcgan.machine.precision.resolve)
            raise ValueError("GAN takes a resolved precision, not 'auto': resolve it first")
        self.cfg = cfg
        self.precision = cfg.precision
        seed_everything(cfg.seed)
        self.strategy = make_strategy(cfg.strategy, cfg.devices)
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % self.replicas:
            raise params_error(
                f"train.batch_size={cfg.batch_size} does not split "
                f"evenly over {self.replicas} devices; use a multiple of "
                f"{self.replicas}"
            )
        with self.strategy.scope():
            self.generator, self.discriminator = build_models(
                cfg.z_dim, cfg.leaky_slope, self.precision, synchronized_bn=self.replicas > 1
            )
            self.g_optimizer = self._adam(cfg.g_learning_rate, steps_per_iteration=1)
            self.d_optimizer = self._adam(cfg.d_learning_rate, steps_per_iteration=2)
            # Build optimizer slots now: variables cannot be created inside the compiled step.
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            # Made after everything training builds, and from G's weights only: training's
            # variables, initial values and random draws are those of a run without them.
            self.averaged = Averaged(self.generator, cfg.ema_decay) if cfg.ema_decay else None
            self.best = Best(self.scored_generator) if cfg.keep == KEEP_BEST else None
        self.images = tf.constant(images, dtype=tf.float32)  # (N, 28, 28, 1), stays on device
        self.rng = tf.random.Generator.from_seed(cfg.seed)
        if jit_compile and cfg.strategy != "default":  # as dcgan.machine.precision.candidates
            raise ValueError("XLA (jit_compile) is used with the default strategy only")
        self.jit_compile = jit_compile
        # XLA only where train.precision: auto measured it faster (on a GPU); None is
        # tf.function's own default, so the CPU step is the graph it always was.
        self._compiled_step = tf.function(
            self._step, reduce_retracing=True, jit_compile=True if jit_compile else None
        )

    def _adam(self, learning_rate: float, steps_per_iteration: int) -> keras.optimizers.Optimizer:
        """Adam as the book has it; under mixed_float16 inside a dynamic loss scale: float16's
        range flushes small gradients to zero, so the loss is scaled up, the gradients back
        down, and a step whose gradients overflowed is skipped (bfloat16 has float32's range
        and needs none of it). With ``train.lr_decay_from``, its rate is a LinearDecay."""
        cfg = self.cfg
        rate: float | LinearDecay = learning_rate
        if cfg.lr_decay_from:
            start = round(cfg.lr_decay_from * cfg.iterations)
            rate = LinearDecay(learning_rate, start, cfg.iterations, steps_per_iteration)
        adam = keras.optimizers.Adam(rate, cfg.beta_1, cfg.beta_2)
        if self.precision == FLOAT16:
            return keras.optimizers.LossScaleOptimizer(adam)
        return adam

    # -- the maths -------------------------------------------------------------------------

    def d_update(self, images: tf.Tensor, label: float) -> tuple[tf.Tensor, tf.Tensor]:
        """One Adam step of D on one batch; returns (loss, accuracy) before the step. The
        compiled step runs it twice (real, fake), then :meth:`g_update`."""
        d = self.discriminator
        labels = tf.fill([tf.shape(images)[0], 1], label)
        with tf.GradientTape() as tape:
            pred = tf.cast(train_forward(d, images), tf.float32)  # (B, 1)
            loss = bce(labels, pred)  # mean over this replica's share
            # Keras sums gradients over replicas: scale so the sum is the global-batch mean.
            # scale_loss: the loss scale under mixed_float16, the loss itself otherwise.
            scaled = self.d_optimizer.scale_loss(loss / self.replicas)
        grads = tape.gradient(scaled, d.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, d.trainable_variables, strict=True))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(pred > 0.5, labels > 0.5), tf.float32))
        return loss, accuracy

    def g_update(self, z: tf.Tensor) -> tf.Tensor:
        """One Adam step of G through D; D's weights and BatchNorm statistics stay untouched."""
        g, d = self.generator, self.discriminator
        labels = tf.ones([tf.shape(z)[0], 1])
        with tf.GradientTape() as tape:
            fake = train_forward(g, z)  # (B, 28, 28, 1); updates G's BatchNorm statistics
            # D is frozen: its BatchNorm normalises with batch statistics, but keeps its own.
            pred = train_forward(d, fake, update_statistics=False)
            loss = bce(labels, tf.cast(pred, tf.float32))
            scaled = self.g_optimizer.scale_loss(loss / self.replicas)
        grads = tape.gradient(scaled, g.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, g.trainable_variables, strict=True))
        return loss

    def _d_fakes(self, z: tf.Tensor) -> tf.Tensor:
        """D's fake batch. ``predict`` (the book's ``generator.predict``): G in inference mode,
        BatchNorm on its moving statistics, which lag far behind the batch statistics early in
        training. ``training``: G as its own step runs it, on batch statistics; the moving
        statistics are left to the G step, so only the source of D's fakes changes."""
        if self.cfg.d_fakes == "training":
            return tf.stop_gradient(train_forward(self.generator, z, update_statistics=False))
        return self.generator(z, training=False)

    def _replica_step(self, real: tf.Tensor, z: tf.Tensor, z_g: tf.Tensor) -> dict[str, tf.Tensor]:
        """The iteration on this replica's share of the global batch (all of it on one device)."""
        if self.replicas > 1:
            # Not on one device: the slice there trips Grappler's remapper (a logged error and
            # a skipped optimisation pass) for nothing.
            share = self.cfg.batch_size // self.replicas
            i = tf.distribute.get_replica_context().replica_id_in_sync_group
            real, z, z_g = (t[i * share : (i + 1) * share] for t in (real, z, z_g))
        fake = self._d_fakes(z)
        d_loss_real, d_acc_real = self.d_update(real, 1.0 - self.cfg.label_smoothing)
        d_loss_fake, d_acc_fake = self.d_update(fake, 0.0)
        g_loss = self.g_update(z_g)
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
        if self.averaged is not None:  # G's step count is now n + 1 for the n-th update
            self.averaged.update(self.g_optimizer.iterations - 1)
        mean = tf.distribute.ReduceOp.MEAN  # equal shares: the mean of means is the global mean
        return {k: self.strategy.reduce(mean, v, axis=None) for k, v in per_replica.items()}

    # -- the public surface ----------------------------------------------------------------

    def train_step(self) -> dict[str, tf.Tensor]:
        """One iteration (two D steps, one G step), compiled; returns d_loss, d_accuracy, g_loss."""
        return self._compiled_step()

    def step_graph(self) -> tf.Graph:
        """The compiled training step's graph (the benchmark counts its FLOPs)."""
        return self._compiled_step.get_concrete_function().graph

    @property
    def trace_count(self) -> int:
        """How often the compiled step was traced; more than one means retracing."""
        return self._compiled_step.experimental_get_tracing_count()

    @property
    def scored_generator(self) -> keras.Model:
        """The generator the probe scores as the run's quality: G's average with
        ``train.ema_decay``, else G itself."""
        return self.averaged.model if self.averaged is not None else self.generator

    @property
    def shipped_generator(self) -> keras.Model:
        """The generator the stage saves: the copy of the lowest FCD with ``train.keep:
        best``, else :attr:`scored_generator` at the last iteration."""
        return self.best.model if self.best is not None else self.scored_generator

    def state_variables(self) -> dict[str, Any]:
        """Every variable the next iteration reads, and the average and the kept copy of G,
        by a stable name (for checkpoints)."""
        groups = {
            "generator": self.generator.weights,
            "discriminator": self.discriminator.weights,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
        }
        if self.averaged is not None:
            groups["generator_ema"] = self.averaged.model.weights
        if self.best is not None:
            groups["generator_best"] = self.best.model.weights
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
