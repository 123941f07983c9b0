"""The yardstick of docs/performance.md: the book's DCGAN and training loop as a plain PyTorch
eager script, timed and profiled by layer kind.

PyTorch is not a dependency of the project; run this in an environment of its own:

    python -m venv /tmp/yardstick && /tmp/yardstick/bin/pip install torch==2.13.0
    /tmp/yardstick/bin/python docs/yardstick/pytorch_step.py            # JSON on stdout

The same G and D as dcgan.gan.models (Keras' BatchNorm momentum 0.99 and epsilon 1e-3; Keras'
default LeakyReLU slope 0.01 is params.yaml's), the same loop as dcgan.gan.training: D's fake
batch from G in inference mode, one Adam step of D on a real batch and one on the fake
batch, then one Adam step of G through D with D's weights left alone; Adam's defaults,
learning rate 1e-3, batch 128, z_dim 100.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from kinds import KINDS, median_seconds, report, torch_kind  # noqa: E402

BATCH, Z_DIM, SLOPE = 128, 100, 0.01


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=0.01, eps=1e-3)  # Keras: momentum 0.99


def models() -> tuple[nn.Module, nn.Module]:
    g = nn.Sequential(
        nn.Linear(Z_DIM, 7 * 7 * 256),
        nn.Unflatten(1, (256, 7, 7)),
        nn.ConvTranspose2d(256, 128, 3, 2, padding=1, output_padding=1),
        bn(128),
        nn.LeakyReLU(SLOPE),
        nn.ConvTranspose2d(128, 64, 3, 1, padding=1),
        bn(64),
        nn.LeakyReLU(SLOPE),
        nn.ConvTranspose2d(64, 1, 3, 2, padding=1, output_padding=1),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 32, 3, 2, padding=1),
        nn.LeakyReLU(SLOPE),
        nn.Conv2d(32, 64, 3, 2, padding=1),
        bn(64),
        nn.LeakyReLU(SLOPE),
        nn.Conv2d(64, 128, 3, 2, padding=1),
        bn(128),
        nn.LeakyReLU(SLOPE),
        nn.Flatten(),
        nn.Linear(2048, 1),
        nn.Sigmoid(),
    )
    return g, d


def make_iteration():
    torch.manual_seed(0)
    g, d = models()
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    bce = nn.BCELoss()
    images = torch.rand(12_000, 1, 28, 28) * 2 - 1  # the speed does not depend on the digits
    ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)

    def d_update(x: torch.Tensor, labels: torch.Tensor) -> None:
        d_opt.zero_grad(set_to_none=True)
        bce(d(x), labels).backward()
        d_opt.step()

    def iteration() -> None:
        real = images[torch.randint(0, len(images), (BATCH,))]
        g.eval()  # the book's generator.predict
        with torch.no_grad():
            fake = g(torch.randn(BATCH, Z_DIM))
        g.train()
        d_update(real, ones)
        d_update(fake, zeros)
        g_opt.zero_grad(set_to_none=True)
        d.requires_grad_(False)  # the G step leaves D's weights alone
        bce(d(g(torch.randn(BATCH, Z_DIM))), ones).backward()
        g_opt.step()
        d.requires_grad_(True)

    return iteration


def breakdown(iteration, iterations: int) -> dict[str, float]:
    """Milliseconds per iteration by layer kind (kinds.KINDS), from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(iterations):
            iteration()
    total = collections.Counter()
    for event in prof.events():
        kind = torch_kind(event.name, event.input_shapes, event.cpu_parent is None)
        if kind is not None:
            total[kind] += event.cpu_time_total
    return {kind: round(total[kind] / iterations / 1000, 2) for kind in KINDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30, help="timed (median)")
    parser.add_argument("--profiled", type=int, default=10, help="iterations profiled")
    args = parser.parse_args()
    iteration = make_iteration()
    seconds = median_seconds(iteration, args.iterations)
    ms = breakdown(iteration, args.profiled)
    versions = {
        "torch": torch.__version__,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
    print(report(versions, seconds, ms))


if __name__ == "__main__":
    main()
