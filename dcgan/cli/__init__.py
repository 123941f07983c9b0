"""The ``dcgan`` command: ``dcgan sample``, ``dcgan runs``, ``dcgan promote``, ``dcgan bench``,
``dcgan stack`` and ``dcgan sweep``.

One room each: ``parser`` is ``dcgan --help`` (the flags, their types and defaults),
``sample`` writes digits from the ONNX generator without TensorFlow, ``commands`` holds the
other five. Here, only the dispatch: the parsed arguments to their command, under
``run_main``'s one-line errors and exit codes."""

from __future__ import annotations

from dcgan.cli.commands import (
    bench_command,
    promote_command,
    runs_command,
    stack_command,
    sweep_command,
)
from dcgan.cli.parser import build_parser, version
from dcgan.cli.sample import sample_command
from dcgan.errors import log_level, run_main

__all__ = ["build_parser", "main", "version"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "sample": sample_command,
        "runs": runs_command,
        "promote": promote_command,
        "bench": bench_command,
        "stack": stack_command,
        "sweep": sweep_command,
    }

    return run_main(
        lambda: commands[args.command](args), level=lambda: log_level(args.verbose, args.quiet)
    )
