"""One error type for problems a user can fix, and the wrapper every entry point runs in (the
stages and ``dcgan``): it sets up logging and turns errors into one line and an exit code."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger("dcgan")

# Exit codes: 2 for bad input a user can fix (argparse uses 2 as well), 130 for Ctrl-C.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class DcganError(Exception):
    """A problem the user can fix. The message names the problem and the fix, on one line."""


# The log level when neither -v nor -q is given (DEBUG, INFO, WARNING or ERROR).
LOG_LEVEL_ENV = "DCGAN_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(verbose: bool = False, quiet: bool = False) -> int:
    """-v: DEBUG; -q: WARNING; else ``$DCGAN_LOG_LEVEL``, default INFO."""
    if verbose or quiet:
        return logging.DEBUG if verbose else logging.WARNING
    given = os.environ.get(LOG_LEVEL_ENV, "")
    name = given.strip().upper() or "INFO"
    if name not in LOG_LEVELS:
        raise DcganError(
            f"{LOG_LEVEL_ENV}={given!r} is not a log level; use one of {', '.join(LOG_LEVELS)}"
        )
    return logging.getLevelName(name)


def configure_logging(level: int) -> None:
    """Log to stderr for people (MLflow and reports/ hold the machine-readable record), ours at
    ``level``. MLflow's own INFO lines (requirements exported, tables created) would drown
    ours: it shows its warnings, and everything at DEBUG, unless ``MLFLOW_LOGGING_LEVEL``
    says otherwise."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # MLflow reads the variable when it is first imported (the entry points import it lazily);
    # its logger's level is set too, for when it already was.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if level <= logging.DEBUG else "WARNING")
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
    logging.getLogger().setLevel(level)


def run_main(main: Callable[[], None], level: Callable[[], int] = log_level) -> int:
    """Run an entry point with logging at ``level()`` (``$DCGAN_LOG_LEVEL`` unless the entry
    point has flags); user errors become one line on stderr and a non-zero exit."""
    try:
        configure_logging(level())
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
