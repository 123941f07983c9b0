"""Draw the README's figures of the book's run from the files in this folder.

Reads the run's fixed-noise grids (``reports/samples/`` of a
``dvc exp run -S train.iterations=20000``; pass the folder) and ``train_history.csv`` beside
this script, and the book's published log (``book_log.csv``: every 1 000th line printed by
Chapter_4_DCGAN.ipynb in github.com/GANs-in-Action/gans-in-action). Writes ``progress.png`` and
``vs_book.png`` here::

    python docs/book_run/make_figures.py path/to/reports/samples
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent
SHOWN = (1000, 2000, 5000, 10000, 20000)


def read_log(path: Path) -> dict[str, list[float]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def progress(samples: Path) -> None:
    fig, axes = plt.subplots(1, len(SHOWN), figsize=(2.2 * len(SHOWN), 2.6))
    for ax, iteration in zip(axes, SHOWN, strict=True):
        ax.imshow(Image.open(samples / f"iter_{iteration:06d}.png"), cmap="gray")
        ax.set_title(f"{iteration:,} iterations".replace(",", " "), fontsize=10)
        ax.axis("off")
    fig.suptitle("the same 16 noise vectors, as training goes on", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "progress.png", dpi=100)
    plt.close(fig)


def vs_book() -> None:
    ours, book = read_log(HERE / "train_history.csv"), read_log(HERE / "book_log.csv")
    fig, (ax_acc, ax_d, ax_g) = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    for ax, key, label, scale in (
        (ax_acc, "d_accuracy", "D accuracy (%)", 100),
        (ax_d, "d_loss", "D loss", 1),
        (ax_g, "g_loss", "G loss", 1),
    ):
        ax.plot(ours["iteration"], [scale * v for v in ours[key]], lw=0.8, label="ours (every 200)")
        ax.plot(
            book["iteration"],
            [scale * v for v in book[key]],
            "o-",
            ms=3,
            lw=1,
            label="the book's published log (every 1 000)",
        )
        ax.set_ylabel(label)
    ax_acc.set_ylim(80, 101)
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_g.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(HERE / "vs_book.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python docs/book_run/make_figures.py REPORTS_SAMPLES_DIR")
    progress(Path(sys.argv[1]))
    vs_book()
