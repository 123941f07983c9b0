"""Two evaluate-stage samples-by-class grids side by side, each with its title: a study run's
beside the book's 20 000-iteration run (docs/results.md).

    dvc exp apply study-bf16-s0        # its outputs come back from the DVC cache
    python docs/study/samples_vs_book.py reports/samples_by_class.png \
        docs/book_run/samples_by_class.png docs/study/samples_vs_book.png \
        --titles "5 000 iterations: ..." "20 000 iterations: ..."
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left")
    parser.add_argument("right")
    parser.add_argument("out")
    parser.add_argument("--titles", nargs=2, default=("", ""), metavar="TITLE")
    args = parser.parse_args(argv)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), dpi=90)
    for ax, path, title in zip(axes, (args.left, args.right), args.titles, strict=True):
        ax.imshow(mpimg.imread(path), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title.replace("\\n", "\n"), fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, metadata={"Software": None})


if __name__ == "__main__":
    main()
