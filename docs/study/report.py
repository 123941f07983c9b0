"""The recipe study: each recipe's FCD curve during training, in one figure, and a table of
when each first falls below 40, 20 and 10, from the MLflow runs of the queued experiments.

    dvc exp run --queue -n study-<recipe> -S train.iterations=N -S train.eval_interval=500 \\
        <the recipe's -S flags>
    dvc queue start -j 1
    python docs/study/report.py            # prints the Markdown table, writes docs/study/fcd.png

Runs are found by their DVC experiment name (the ``dvc_exp_name`` tag); only finished runs
count. CPU minutes are the training loop's process CPU time (every thread) per iteration,
times the iteration: they compare recipes on a shared machine where wall time cannot.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from dcgan.contract import FCD
from dcgan.errors import DcganError, run_main
from dcgan.files import atomic_path
from dcgan.tracking.lineage import QUALITY_PREFIX
from dcgan.tracking.store import safe_uri, tracking_uri

HERE = Path(__file__).parent
NAME = re.compile(r"study-(?P<recipe>[a-z0-9]+)")
THRESHOLDS = (40.0, 20.0, 10.0)
FLAGS = {
    "book": "(defaults: Adam 1e-3 / 1e-3, beta_1 0.9)",
    "adam": "-S train.g_learning_rate=0.0002 -S train.d_learning_rate=0.0002 -S train.beta_1=0.5",
}


def curves(uri: str) -> dict[str, tuple[object, list[tuple[int, float]]]]:
    """Each finished study run, by recipe: the run and its in-training FCD curve, in order."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcgan")
    found = {}
    if experiment is None:
        return found
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'"):
        match = NAME.fullmatch(run.data.tags.get("dvc_exp_name", ""))
        if not match:
            continue
        history = client.get_metric_history(run.info.run_id, f"{QUALITY_PREFIX}{FCD}")
        if history:
            found[match["recipe"]] = (run, sorted((m.step, m.value) for m in history))
    return found


def first_below(curve: list[tuple[int, float]], threshold: float) -> int | None:
    """The first scored iteration whose FCD is below ``threshold``, if any."""
    return next((step for step, fcd in curve if fcd < threshold), None)


def table(found: dict) -> str:
    head = " | ".join(f"FCD < {t:g}: iteration (CPU min)" for t in THRESHOLDS)
    lines = [
        f"| recipe | `dvc exp run` flags | iterations | {head} | lowest in training "
        "| evaluate stage's `fcd` (10 000) | CPU s / it |",
        "|---|---|---|" + "---|" * len(THRESHOLDS) + "---|---|---|",
    ]
    for recipe, (run, curve) in sorted(found.items(), key=lambda kv: min(v for _, v in kv[1][1])):
        metrics = run.data.metrics
        cpu = metrics["cpu_seconds_per_iteration"]
        cells = []
        for threshold in THRESHOLDS:
            step = first_below(curve, threshold)
            cells.append("not reached" if step is None else f"{step} ({cpu * step / 60:.0f})")
        low_step, low = min(curve, key=lambda sv: (sv[1], sv[0]))
        final = f"{metrics[FCD]:.2f}" if FCD in metrics else "not evaluated"
        lines.append(
            f"| {recipe} | {FLAGS.get(recipe, '?')} | {run.data.params['train.iterations']} "
            f"| {' | '.join(cells)} | {low:.2f} at {low_step} | {final} | {cpu:.3f} |"
        )
    return "\n".join(lines)


def figure(found: dict, out: Path) -> None:
    """Every recipe's FCD curve on one log axis, with the thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for recipe, (run, curve) in sorted(found.items()):
        steps, values = zip(*curve, strict=True)
        samples = run.data.params.get("train.eval_samples", "?")
        ax.plot(steps, values, marker="o", markersize=3, label=f"{recipe} ({samples} samples)")
    for threshold in THRESHOLDS:
        ax.axhline(threshold, color="grey", linewidth=0.6, linestyle="--")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("FCD during training (lower is better)")
    ax.set_title("FCD of G's samples during training, full MNIST")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tracking_uri",
        nargs="?",
        default=tracking_uri(),
        help="the MLflow store the study logged to (default: $MLFLOW_TRACKING_URI, else the "
        "repository's mlflow.db, as the pipeline's)",
    )
    parser.add_argument("--figure", type=Path, default=HERE / "fcd.png", help="the figure")
    args = parser.parse_args()
    found = curves(args.tracking_uri)
    if not found:
        raise DcganError(
            f"no finished study run with a quality curve in {safe_uri(args.tracking_uri)} "
            "(experiments named study-<recipe>); queue and run them first, as "
            "docs/results.md shows"
        )
    print(table(found))
    figure(found, args.figure)


if __name__ == "__main__":
    sys.exit(run_main(main))
