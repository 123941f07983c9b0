"""What bit-determinism costs the training step: the TensorFlow settings the step runs with,
and the step timed under other settings side by side in one process (``dcgan bench``).

dcgan.gan.determinism sets them for every training stage; this module only reads them and, for
the benchmark, swaps them for a while. It is not a stage dependency: the bench is not part
of the pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Callable, Iterator
from typing import Any

from dcgan.machine.timing import median_seconds


@dataclasses.dataclass(frozen=True)
class Settings:
    """The three TensorFlow settings that dcgan.gan.determinism turns for bit-identical training."""

    op_determinism: bool
    constant_folding: bool
    remapping: bool

    def describe(self) -> str:
        return ", ".join(
            f"{name.replace('_', ' ')} {'on' if on else 'off'}"
            for name, on in dataclasses.asdict(self).items()
        )


# The settings the step is timed under besides the project's own: each of the project's
# choices undone, and TensorFlow's defaults (every Grappler pass on, no op determinism).
VARIANTS = {
    "op determinism off": Settings(False, False, False),
    "constant folding and remapper on": Settings(True, True, True),
    "TensorFlow's defaults": Settings(False, True, True),
}


def current() -> Settings:
    """The settings TensorFlow holds now (what the next instantiated graph runs with)."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    options = tf.config.optimizer.get_experimental_options()
    # A pass Grappler was never told about runs: absent means on.
    return Settings(
        # The public API can enable op determinism but neither read nor undo it.
        op_determinism=tf_config.is_op_determinism_enabled(),
        constant_folding=options.get("constant_folding", True),
        remapping=options.get("remapping", True),
    )


def apply(settings: Settings) -> None:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if settings.op_determinism:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
    tf.config.optimizer.set_experimental_options(
        {"constant_folding": settings.constant_folding, "remapping": settings.remapping}
    )


@contextlib.contextmanager
def applied(settings: Settings) -> Iterator[None]:
    """``settings`` inside the block, what was there before after it, even on an error."""
    before = current()
    apply(settings)
    try:
        yield
    finally:
        apply(before)


PROJECT = "the project's"


def step_under_variants(
    make_step: Callable[[], Callable[[], object]], iterations: int, rounds: int = 3
) -> dict[str, Any]:
    """Seconds per iteration of a fresh step under the settings in force (the project's)
    and under each of :data:`VARIANTS`, side by side in this process.

    ``make_step`` builds a new model and returns its one-iteration callable. Each step is
    traced, run and timed inside its settings: Grappler reads its options when a graph is
    instantiated, and op determinism is read when a kernel runs. The steps take turns over
    ``rounds`` rounds, so that a burst of load elsewhere on the machine hits them alike; each
    figure is the median of its rounds' medians.
    """
    project = current()
    candidates = {PROJECT: project, **VARIANTS}
    steps = {}
    for name, settings in candidates.items():
        steps[name] = make_step()
        with applied(settings):
            steps[name]()  # traced and instantiated under these settings
    per_round = max(iterations // rounds, 3)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, settings in candidates.items():
            with applied(settings):
                times[name].append(median_seconds(steps[name], per_round, warmup=1))
    rows = {name: (candidates[name], statistics.median(t)) for name, t in times.items()}
    ours = rows[PROJECT][1]
    return {
        "settings": dataclasses.asdict(project),
        "variants": {
            name: {
                **dataclasses.asdict(settings),
                "s_per_iteration": seconds,
                # above 1: the project's settings are faster than these
                "slowdown_vs_project": seconds / ours,
            }
            for name, (settings, seconds) in rows.items()
        },
    }


def table_lines(determinism: dict[str, Any]) -> list[str]:
    """The settings the step ran with, then the step under each other setting."""
    settings = Settings(**determinism["settings"])
    lines = [f"  the step ran with {settings.describe()} (bit-identical training)"]
    for name, row in determinism["variants"].items():
        lines.append(
            f"    {name + ':':36s}{row['s_per_iteration']:7.3f} s/iteration "
            f"({row['slowdown_vs_project']:.2f}x the project's)"
        )
    return lines
