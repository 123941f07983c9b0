"""The training animation: the fixed-noise grids of every sample interval as one GIF.

The train stage saves G's images of one fixed noise batch at every ``sample_interval``
(``iter_NNNNNN.png``); played in order they show the same 16 digits forming. Each frame
carries its iteration in a band above the grid, so a still of the GIF says where it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcgan.errors import DcganError
from dcgan.files import atomic_path
from dcgan.pictures.plots import GRID_FILE

FRAME_MS = 400  # per interval: 10 intervals play in 4 s
LAST_FRAME_MS = 2500  # the final grid stays long enough to look at before the loop restarts
BAND = 40  # pixels of label above each grid


def grid_files(folder: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every grid in ``folder``, in iteration order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DcganError(f"{folder} is not a folder of progress grids; run `dvc repro train`")
    found = []
    for path in folder.iterdir():
        match = GRID_FILE.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise DcganError(f"{folder} has no iter_NNNNNN.png grids; run `dvc repro train`")
    return sorted(found)


def frame(path: Path, iteration: int, last: int):
    """One frame: the grid at ``path`` under a band that reads ``iteration i / last``."""
    from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grid = image.convert("L")
    except (OSError, UnidentifiedImageError) as exc:
        raise DcganError(
            f"{path} is not a readable PNG ({exc}); run `dvc repro -f train`"
        ) from None
    canvas = Image.new("L", (grid.width, grid.height + BAND), 0)
    canvas.paste(grid, (0, BAND))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=BAND * 0.55)
    draw.text(
        (grid.width // 2, BAND // 2),
        f"iteration {iteration:,} / {last:,}",
        fill=255,
        font=font,
        anchor="mm",
    )
    return canvas


def write_gif(grids: list[tuple[int, Path]], path: str | os.PathLike[str]) -> Path:
    """``path``: one frame per ``(iteration, grid)`` of :func:`grid_files`, looping forever."""
    last = grids[-1][0]  # the train stage always saves the final iteration's grid
    frames = [frame(p, iteration, last) for iteration, p in grids]
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    path = Path(path)
    with atomic_path(path) as tmp:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
            optimize=False,  # keep every frame whole: a still of any frame shows the full grid
            disposal=1,
        )
    return path
