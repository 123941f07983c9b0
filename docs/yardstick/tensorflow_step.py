"""Our compiled training step (dcgan.gan.training.GAN, params.yaml's train block, float32), timed
and profiled op by op with TensorFlow's profiler, broken down by the same layer kinds as
pytorch_step.py:

    python docs/yardstick/tensorflow_step.py            # JSON on stdout

TensorFlow runs independent ops of a graph at once (two inter-op threads here), so their
profiled times overlap and add up to more than the step's wall time. The profile is taken
with one inter-op thread, which runs the ops one after the other: the step's wall time is
the same within noise on a 2-core AMD EPYC (0.198 against 0.194-0.198 s/iteration), and
the kinds then add up to it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
from kinds import KINDS, median_seconds, report, tensorflow_kind  # noqa: E402


def op_rows(xplane: Path) -> list[dict]:
    """Every op of the profile, with its type, name and self time (us), from the profiler's
    own op statistics."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data, ok = plugin.xspace_to_tools_data([str(xplane)], "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"TensorFlow's profiler could not read {xplane}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    rows = [dict(zip(columns, [c.get("v") for c in r["c"]], strict=True)) for r in table["rows"]]
    return [r for r in rows if r["host_or_device"] == "Host" and r["type"] != "IDLE"]


def breakdown(rows: list[dict], iterations: int) -> dict[str, float]:
    total = collections.Counter()
    for row in rows:
        total[tensorflow_kind(row["type"], row["operation"])] += row["total_self_time"]
    return {kind: round(total[kind] / iterations / 1000, 2) for kind in KINDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--iterations", type=int, default=30, help="timed (median)")
    parser.add_argument("--profiled", type=int, default=10, help="iterations profiled")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from dcgan.config import FLOAT32, load_all
    from dcgan.data import normalise
    from dcgan.gan.training import GAN
    from dcgan.sources import load_sample

    cfg = dataclasses.replace(load_all(args.params)["train"], precision=FLOAT32)
    gan = GAN(cfg, normalise(load_sample(0.2, 0).x_train))
    seconds = median_seconds(lambda: float(gan.train_step()["g_loss"]), args.iterations)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.profiled):
            float(gan.train_step()["g_loss"])
        tf.profiler.experimental.stop()
        rows = op_rows(next(Path(logdir).rglob("*.xplane.pb")))
    ms = breakdown(rows, args.profiled)
    print(report({"tensorflow": tf.__version__}, seconds, ms))


if __name__ == "__main__":
    main()
