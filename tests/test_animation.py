"""reports/progress.gif: one frame per recorded interval, in iteration order, each the grid
saved at that interval under a label that names its iteration."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from dcgan.errors import DcganError
from dcgan.pictures.animation import BAND, grid_files, write_gif
from dcgan.pictures.plots import save_grid


def grids(folder, iterations):
    """One grid per iteration, each a different constant grey so frames can be told apart."""
    folder.mkdir()
    for k, iteration in enumerate(iterations):
        images = np.full((16, 28, 28, 1), -1.0 + 0.1 * (k + 1), np.float32)
        save_grid(images, folder / f"iter_{iteration:06d}.png")
    return folder


def test_one_frame_per_interval_in_iteration_order(tmp_path):
    # Written out of order; iter_1000000.png sorts after iter_200000.png only as a number.
    folder = grids(tmp_path / "samples", [1_000_000, 200, 200_000, 400])
    gif = write_gif(grid_files(folder), tmp_path / "progress.gif")
    with Image.open(gif) as animation:
        frames = [f.convert("L") for f in ImageSequence.Iterator(animation)]
        assert animation.info["loop"] == 0
    order = [200, 400, 200_000, 1_000_000]
    assert len(frames) == len(order)
    labels = []
    for frame, iteration in zip(frames, order, strict=True):
        expected = np.asarray(Image.open(folder / f"iter_{iteration:06d}.png").convert("L"))
        pixels = np.asarray(frame)
        assert np.array_equal(pixels[BAND:], expected)  # the grid itself, unchanged
        labels.append(pixels[:BAND])
    assert all(label.max() == 255 for label in labels)  # white text on every frame
    assert len({label.tobytes() for label in labels}) == len(order)  # each names its iteration


def test_the_same_grids_make_the_same_bytes(tmp_path):
    folder = grids(tmp_path / "samples", [3, 6])
    first = write_gif(grid_files(folder), tmp_path / "a.gif").read_bytes()
    assert write_gif(grid_files(folder), tmp_path / "b.gif").read_bytes() == first  # a DVC output


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
def test_no_grids_is_one_line(tmp_path, case):
    folder = tmp_path / "samples"
    if case != "missing":
        folder.mkdir()
    if case == "corrupt":
        (folder / "iter_000003.png").write_bytes(b"not a png")
    with pytest.raises(DcganError, match="run `dvc repro") as info:
        write_gif(grid_files(folder), tmp_path / "progress.gif")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "progress.gif").exists()
