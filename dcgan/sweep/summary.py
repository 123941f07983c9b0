"""The sweep's summary: one row a trial, the lowest evaluate-stage FCD first, failed trials
last with their one-line cause."""

from __future__ import annotations

COLUMNS = ("trial", "-S", "FCD", "MNIST score", "best in training (iteration)", "node", "minutes")


def table(results: list[dict]) -> str:
    """A Markdown table, as printed and as the parent run's ``sweep.md``."""
    done = sorted((r for r in results if r["status"] == "done"), key=lambda r: r["fcd"])
    failed = sorted((r for r in results if r["status"] != "done"), key=lambda r: r["name"])
    rows = [_row(r) for r in done] + [_failed(r) for r in failed]
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def _minutes(r: dict) -> str:
    return f"{r['seconds'] / 60:.1f}" if "seconds" in r else "–"


def _row(r: dict) -> list[str]:
    best = r.get("best_training_fcd")
    scored = f"{best:.2f} ({r['best_iteration']})" if best is not None else "–"
    return [
        r["name"],
        " ".join(r["overrides"]),
        f"{r['fcd']:.2f}",
        f"{r['mnist_score']:.2f}",
        scored,
        r.get("node", "–"),
        _minutes(r),
    ]


def _failed(r: dict) -> list[str]:
    cause = r["cause"].replace("|", "/")
    return [
        r["name"],
        " ".join(r["overrides"]),
        "failed: " + cause,
        "",
        "",
        r.get("node", "–"),
        _minutes(r),
    ]
