"""The recipe study: each run's FCD curve during training, in one figure, and a table of when
each first falls below 40, 20 and 10, from the MLflow runs of the queued experiments.

    dvc exp run --queue -n study-<name> -S train.iterations=N -S train.eval_interval=500 \\
        <the recipe's -S flags>
    dvc queue start -j 1
    python docs/study/report.py            # prints the Markdown table, writes docs/study/fcd.png
    python docs/study/report.py --match '.*-s[01]' --figure docs/study/averaged.png

Runs are found by their DVC experiment name (the ``dvc_exp_name`` tag), ``study-<name>``;
``--match`` keeps the names that match a regular expression; only finished runs count. A
run's flags are its ``train`` params that differ from params.yaml's (besides the iteration
count and the scoring interval). With the averaged generator on, the live G's curve is drawn
dashed beside the average's; a recipe has one colour, a seed (``-s<N>``) one marker. CPU
minutes are the training loop's process CPU time (every thread) per iteration, times the
iteration: they compare recipes on a shared machine where wall time cannot.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from dcgan.config import PARAMS_FILE, flat_params, load_all
from dcgan.contract import FCD
from dcgan.errors import DcganError, run_main
from dcgan.files import atomic_path
from dcgan.tracking.lineage import QUALITY_PREFIX
from dcgan.tracking.store import safe_uri, tracking_uri

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
NAME = re.compile(r"study-(?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)")
THRESHOLDS = (40.0, 20.0, 10.0)
LIVE = "live_fcd"  # the live G's score beside the average's (train.ema_decay > 0)
SEEDED = re.compile(r"(?P<recipe>.+)-s(?P<seed>\d+)")  # study-<recipe>-s<seed>
MARKERS = "os^Dv"  # a seed's marker
# Shown in columns of their own, or the study's own setting: not a recipe's flag.
NOT_FLAGS = {"train.iterations", "train.eval_interval"}


def curves(uri: str, match: str = ".*") -> dict[str, tuple[object, dict[str, list]]]:
    """Each finished study run whose name matches ``match``: the run and its in-training
    curves (``fcd``, and ``live_fcd`` where the average was on), each in order."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcgan")
    found = {}
    if experiment is None:
        return found
    keep = re.compile(match)
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'"):
        named = NAME.fullmatch(run.data.tags.get("dvc_exp_name", ""))
        if not named or not keep.fullmatch(named["name"]):
            continue
        lines = {}
        for key in (FCD, LIVE):
            history = client.get_metric_history(run.info.run_id, f"{QUALITY_PREFIX}{key}")
            if history:
                lines[key] = sorted((m.step, m.value) for m in history)
        if FCD in lines:
            found[named["name"]] = (run, lines)
    return found


def flags(params: dict[str, str], defaults: dict[str, object]) -> str:
    """The ``-S`` flags that give ``params`` (a run's) from ``defaults`` (params.yaml's)."""
    changed = [
        f"-S {key}={value}"
        for key, value in sorted(params.items())
        if key in defaults and key not in NOT_FLAGS and not _same(value, defaults[key])
    ]
    return " ".join(changed) or "(the defaults)"


def _same(logged: str, default: object) -> bool:
    """MLflow logs params as text: "0.001" is the default 0.001, "" the default ''."""
    return logged == str(default) or yaml.safe_load(logged) == default


def defaults(path: Path = ROOT / PARAMS_FILE) -> dict[str, object]:
    return flat_params("train", load_all(path)["train"])


def first_below(curve: list[tuple[int, float]], threshold: float) -> int | None:
    """The first scored iteration whose FCD is below ``threshold``, if any."""
    return next((step for step, fcd in curve if fcd < threshold), None)


def table(found: dict, base: dict[str, object]) -> str:
    head = " | ".join(f"FCD < {t:g}: iteration (CPU min)" for t in THRESHOLDS)
    lines = [
        f"| run | `dvc exp run` flags | iterations | {head} | lowest in training "
        "| evaluate stage's `fcd` (10 000) | CPU s / it |",
        "|---|---|---|" + "---|" * len(THRESHOLDS) + "---|---|---|",
    ]
    by_lowest = sorted(found.items(), key=lambda kv: min(v for _, v in kv[1][1][FCD]))
    for name, (run, lines_of) in by_lowest:
        curve = lines_of[FCD]
        metrics = run.data.metrics
        cpu = metrics["cpu_seconds_per_iteration"]
        cells = []
        for threshold in THRESHOLDS:
            step = first_below(curve, threshold)
            cells.append("not reached" if step is None else f"{step} ({cpu * step / 60:.0f})")
        low_step, low = min(curve, key=lambda sv: (sv[1], sv[0]))
        final = f"{metrics[FCD]:.2f}" if FCD in metrics else "not evaluated"
        lines.append(
            f"| {name} | {flags(run.data.params, base)} | {run.data.params['train.iterations']} "
            f"| {' | '.join(cells)} | {low:.2f} at {low_step} | {final} | {cpu:.3f} |"
        )
    return "\n".join(lines)


def recipe_and_seed(name: str) -> tuple[str, int]:
    """``ema0995-best-s1`` is recipe ``ema0995-best`` at seed 1; a name without ``-s<N>`` is
    its recipe at seed 0."""
    found = SEEDED.fullmatch(name)
    return (found["recipe"], int(found["seed"])) if found else (name, 0)


def figure(found: dict, out: Path) -> None:
    """Every run's FCD curve on one log axis, with the thresholds: a colour a recipe, a marker
    a seed, the live G dashed beside its average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    named = {name: recipe_and_seed(name) for name in found}
    recipes = sorted({recipe for recipe, _ in named.values()})
    colours = {recipe: f"C{k % 10}" for k, recipe in enumerate(recipes)}
    seeds = sorted({seed for _, seed in named.values()})
    for name, (_, lines_of) in sorted(found.items()):
        recipe, seed = named[name]
        style = {"color": colours[recipe], "marker": MARKERS[seed % len(MARKERS)]}
        steps, values = zip(*lines_of[FCD], strict=True)
        ax.plot(steps, values, markersize=3, linewidth=1, **style)
        if LIVE in lines_of:  # the average's run: its live G dashed, in the same colour
            steps, values = zip(*lines_of[LIVE], strict=True)
            ax.plot(steps, values, linestyle="--", linewidth=0.7, markersize=0, **style)
    handles = [Line2D([], [], color=colours[recipe], label=recipe) for recipe in recipes]
    if len(seeds) > 1:
        handles += [
            Line2D([], [], color="black", marker=MARKERS[s % len(MARKERS)], linestyle="none",
                   markersize=4, label=f"seed {s}")
            for s in seeds
        ]  # fmt: skip
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    for threshold in THRESHOLDS:
        ax.axhline(threshold, color="grey", linewidth=0.6, linestyle="--")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("FCD during training (lower is better)")
    live = any(LIVE in lines_of for _, lines_of in found.values())
    samples = sorted({run.data.params.get("train.eval_samples", "?") for run, _ in found.values()})
    ax.set_title(
        f"FCD during training, full MNIST, {', '.join(samples)} samples a score"
        + (" (dashed: the live G)" if live else ""),
        fontsize=10,
    )
    ax.grid(True, which="both", linewidth=0.3)
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
    parser.add_argument(
        "--match", default=".*", help="only the runs study-NAME whose NAME matches this regex"
    )
    args = parser.parse_args()
    try:
        re.compile(args.match)
    except re.error as exc:
        raise DcganError(f"--match {args.match!r} is not a regular expression ({exc})") from None
    found = curves(args.tracking_uri, args.match)
    if not found:
        raise DcganError(
            f"no finished study run with a quality curve in {safe_uri(args.tracking_uri)} "
            f"(experiments named study-<name>, the name matching {args.match!r}); queue and "
            "run them first, as docs/results.md shows"
        )
    print(table(found, defaults()))
    figure(found, args.figure)


if __name__ == "__main__":
    sys.exit(run_main(main))
