"""One error type for problems a user can fix, and the wrapper that turns it into an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

log = logging.getLogger("dcgan")

# Exit codes: 2 for bad input a user can fix (argparse uses 2 as well), 130 for Ctrl-C.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class DcganError(Exception):
    """A problem the user can fix. The message names the problem and the fix, on one line."""


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr for people; MLflow and reports/ hold the machine-readable record."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run_main(main: Callable[[], None]) -> int:
    """Run a CLI entry point; user errors become one line on stderr and a non-zero exit."""
    setup_logging()
    try:
        main()
    except DcganError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        # Disk full, read-only folder, missing permission: name the file and the cause.
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"error: cannot access{where}: {exc.strerror or exc} "
            "(check free space and permissions of that folder)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
