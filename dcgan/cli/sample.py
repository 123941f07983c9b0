"""``dcgan sample``: digits from an exported generator, as a PNG grid and/or a .npy, on
onnxruntime, NumPy and Pillow alone. It never imports TensorFlow, so it starts fast and works
where TensorFlow is absent."""

from __future__ import annotations

import argparse
import logging

import numpy as np

from dcgan.cli.commands import generator_artifact
from dcgan.errors import DcganError
from dcgan.files import atomic_path

log = logging.getLogger("dcgan.cli")

# One PNG grid holds at most 64 x 64 tiles (1 792 px square); larger -n goes to --npy alone.
MAX_GRID_IMAGES = 4096
# Images generated per onnxruntime call when streaming to --npy: ~13 MB of pixels at a time.
SAMPLE_CHUNK = 4096


def sample_command(args: argparse.Namespace) -> None:
    import shutil

    from dcgan.contract import IMAGE_SHAPE, draw_noise, noise_chunks
    from dcgan.pictures.plots import save_grid
    from dcgan.shipping.sampling import generate, load_session, z_dim_of

    if args.out is None and args.npy is None:
        raise DcganError("nothing to write; pass --out samples.png and/or --npy samples.npy")
    for flag, path, suffix in (("--out", args.out, ".png"), ("--npy", args.npy, ".npy")):
        if path is not None and path.suffix.lower() != suffix:  # never a PNG named .jpg
            raise DcganError(
                f"{flag} {path}: {flag} writes {suffix[1:].upper()} only; "
                f"give the file the {suffix} suffix"
            )
    if args.interpolate is not None:
        return interpolate_command(args)
    if args.to_seed is not None:
        raise DcganError("--to-seed only applies to --interpolate K; add it or drop --to-seed")
    args.num = 64 if args.num is None else args.num
    if args.out is not None and args.num > MAX_GRID_IMAGES:
        raise DcganError(
            f"-n {args.num} is too many images for one grid (at most {MAX_GRID_IMAGES}); "
            "lower -n, or write only --npy"
        )
    if args.npy is not None:
        needed = args.num * int(np.prod(IMAGE_SHAPE)) * 4
        free = shutil.disk_usage(args.npy.resolve().parent if args.npy.parent.exists() else ".")
        if needed > free.free:
            raise DcganError(
                f"-n {args.num} needs {needed / 1e9:,.1f} GB for {args.npy} and "
                f"{free.free / 1e9:,.1f} GB are free there; lower -n"
            )
    session = load_session(args.model or generator_artifact())
    z_dim = z_dim_of(session)
    if args.out is not None:  # a grid's worth: small enough to hold at once
        images = generate(session, draw_noise(args.num, z_dim, args.seed))
        save_grid(images, args.out, cols=args.cols)
        log.info("wrote %d samples to %s", len(images), args.out)
    if args.npy is not None:
        shape = (args.num, *IMAGE_SHAPE)
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        with atomic_path(args.npy) as tmp, open(tmp, "wb") as f:
            # The .npy header, then the images appended chunk by chunk: memory stays at one
            # chunk for any -n (a memory map would count every written page as resident).
            np.lib.format.write_array_header_1_0(f, header)
            for z in noise_chunks(args.num, z_dim, args.seed, SAMPLE_CHUNK):
                f.write(generate(session, z).astype("<f4", copy=False).tobytes())
        log.info("wrote float32 %s to %s", shape, args.npy)


def interpolate_command(args: argparse.Namespace) -> None:
    """``dcgan sample --interpolate K``: walk i runs from image i of ``dcgan sample -n N
    --seed S`` to image i of ``dcgan sample -n N --seed T``, in K steps."""
    from dcgan.config import SEED_RANGE
    from dcgan.contract import draw_noise
    from dcgan.pictures.plots import save_grid
    from dcgan.shipping.latent import walks
    from dcgan.shipping.sampling import generate, load_session, z_dim_of

    if args.cols is not None:
        raise DcganError("--cols does not apply to --interpolate K (K columns, a walk per row)")
    n, steps = (8 if args.num is None else args.num), args.interpolate
    to_seed = args.to_seed if args.to_seed is not None else (args.seed + 1) % (SEED_RANGE[1] + 1)
    if n * steps > MAX_GRID_IMAGES:
        raise DcganError(
            f"{n} walks of {steps} steps are {n * steps} images, more than one grid holds "
            f"({MAX_GRID_IMAGES}); lower -n or K"
        )
    session = load_session(args.model or generator_artifact())
    z_dim = z_dim_of(session)
    z = walks(draw_noise(n, z_dim, args.seed), draw_noise(n, z_dim, to_seed), steps)
    images = generate(session, z)
    if args.out is not None:
        save_grid(images, args.out, cols=steps)
        log.info(
            "wrote %d walks of %d steps (seed %d -> %d) to %s",
            n,
            steps,
            args.seed,
            to_seed,
            args.out,
        )
    if args.npy is not None:
        with atomic_path(args.npy) as tmp, open(tmp, "wb") as f:
            np.save(f, images.astype("<f4", copy=False))
        log.info("wrote float32 %s to %s", images.shape, args.npy)
