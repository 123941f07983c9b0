"""The recipe sweep's table and grids, from the MLflow runs of the queued experiments.

    dvc exp run --queue -n sweep-<recipe>-s<seed> -S train.seed=<seed> <the recipe's -S flags>
    dvc queue start -j 1
    python docs/sweep/report.py            # prints the Markdown table, writes docs/sweep/grids.png

Runs are found by their DVC experiment name (the ``dvc_exp_name`` tag); only finished runs
count. CPU time is the training loop's process CPU time (every thread), which compares
recipes on a shared machine where wall time cannot.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from mlflow.tracking import MlflowClient

from dcgan.contract import FCD
from dcgan.errors import DcganError, run_main
from dcgan.files import atomic_path
from dcgan.tracking.store import safe_uri, tracking_uri

HERE = Path(__file__).parent
MIN_SEEDS = 2  # one seed's FCD is one draw: a recipe is called best on two or more
NAME = re.compile(r"sweep-(?P<recipe>[a-z0-9]+)-s(?P<seed>\d+)")
FLAGS = {
    "book": "(defaults: Adam 1e-3 / 1e-3, beta_1 0.9)",
    "adam": "-S train.g_learning_rate=0.0002 -S train.d_learning_rate=0.0002 -S train.beta_1=0.5",
    "ttur": "-S train.g_learning_rate=0.0001 -S train.d_learning_rate=0.0004 -S train.beta_1=0.5",
    "tfakes": "-S train.d_fakes=training",
    "smooth": "-S train.label_smoothing=0.1",
    "adamtf": "-S train.g_learning_rate=0.0002 -S train.d_learning_rate=0.0002 "
    "-S train.beta_1=0.5 -S train.d_fakes=training",
}


def runs(uri: str) -> dict[str, list]:
    """The finished sweep runs with an FCD, by recipe."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcgan")
    found = defaultdict(list)
    if experiment is None:
        return found
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'"):
        match = NAME.fullmatch(run.data.tags.get("dvc_exp_name", ""))
        if match and FCD in run.data.metrics:
            found[match["recipe"]].append(run)
    return found


def mean_fcd(runs: list) -> float:
    return statistics.mean(r.data.metrics[FCD] for r in runs)


def table(found: dict[str, list]) -> str:
    lines = [
        "| recipe | `dvc exp run` flags | seeds | FCD (mean, min–max) | MNIST score | class shares "
        "| CPU min / run | wall s / it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe in sorted(found, key=lambda r: mean_fcd(found[r])):
        rs = found[recipe]
        m = [r.data.metrics for r in rs]
        fcd = [x[FCD] for x in m]
        iterations = int(rs[0].data.params["train.iterations"])
        cpu = statistics.mean(x["cpu_seconds_per_iteration"] for x in m) * iterations / 60
        lines.append(
            f"| {recipe} | {FLAGS.get(recipe, '?')} "
            f"| {', '.join(sorted(r.data.params['train.seed'] for r in rs))} "
            f"| {statistics.mean(fcd):.1f} ({min(fcd):.1f}–{max(fcd):.1f}) "
            f"| {statistics.mean(x['mnist_score'] for x in m):.2f} "
            f"| {100 * min(x['min_class_share'] for x in m):.1f}–"
            f"{100 * max(x['max_class_share'] for x in m):.1f} % "
            f"| {cpu:.1f} | {statistics.mean(x['seconds_per_iteration'] for x in m):.2f} |"
        )
    return "\n".join(lines)


def grids(found: dict[str, list], uri: str, out: Path) -> None:
    """The sample grids (evaluate's onnx_samples.png; seed 0's where it ran) of the book's recipe,
    if it ran, and the best: the recipe of lowest mean FCD among those run at MIN_SEEDS seeds or
    more (among all, if none was)."""
    from PIL import Image, ImageDraw, ImageFont

    client = MlflowClient(tracking_uri=uri)
    ranked = [r for r in found if len(found[r]) >= MIN_SEEDS] or list(found)
    best = min(ranked, key=lambda r: mean_fcd(found[r]))
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in dict.fromkeys([r for r in ("book", best) if r in found]):
            rs = found[recipe]
            run = next((r for r in rs if r.data.params["train.seed"] == "0"), rs[0])
            path = client.download_artifacts(run.info.run_id, "onnx_samples.png", tmp)
            image = Image.open(path).convert("L")
            label = Image.new("L", (image.width, 36), 255)
            ImageDraw.Draw(label).text(
                (image.width // 2, 18),
                f"{recipe}, seed {run.data.params['train.seed']}, "
                f"{run.data.params['train.iterations']} iterations: "
                f"FCD {run.data.metrics[FCD]:.1f}, MNIST score "
                f"{run.data.metrics['mnist_score']:.2f}",
                fill=0,
                font=ImageFont.load_default(size=22),
                anchor="mm",
            )
            panel = Image.new("L", (image.width, image.height + 36), 255)
            panel.paste(label, (0, 0))
            panel.paste(image, (0, 36))
            panels.append(panel)
    canvas = Image.new(
        "L", (sum(p.width for p in panels) + 16 * (len(panels) - 1), panels[0].height), 255
    )
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + 16
    with atomic_path(out) as tmp_out:
        canvas.save(tmp_out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tracking_uri",
        nargs="?",
        default=tracking_uri(),
        help="the MLflow store the sweep logged to (default: $MLFLOW_TRACKING_URI, else the "
        "repository's mlflow.db, as the pipeline's)",
    )
    parser.add_argument(
        "--grids", type=Path, default=HERE / "grids.png", help="where to write the grids"
    )
    args = parser.parse_args()
    found = runs(args.tracking_uri)
    if not found:
        raise DcganError(
            f"no finished sweep run in {safe_uri(args.tracking_uri)} (experiments named "
            "sweep-<recipe>-s<seed>); queue and run them first, as docs/results.md shows"
        )
    print(table(found))
    grids(found, args.tracking_uri, args.grids)


if __name__ == "__main__":
    sys.exit(run_main(main))
