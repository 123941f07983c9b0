"""The retry budget around every call to the MLflow store.

Every call is retried for at most ``DCGAN_TRACKING_RETRY_SECONDS`` (default 60) and then raises
:class:`TrackerUnavailable`: MLflow's own client retries a dead server for ~8 minutes, so its
HTTP retries are switched off for our calls and each request is bounded.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from dcgan.errors import DcganError
from dcgan.tracking.store import environ, safe_uri

log = logging.getLogger(__name__)

RETRY_ENV = "DCGAN_TRACKING_RETRY_SECONDS"
RETRY_SECONDS = 60.0
REQUEST_TIMEOUT_S = 10  # one HTTP request; a server that hangs costs at most this per try
# MLflow error codes that a retry cannot fix (the run or key is missing, the request is wrong,
# the credentials are): raised at once. Anything else (a refused connection, a timeout, a 5xx,
# a locked or unreachable database) is retried until the budget runs out.
PERMANENT = {
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "INVALID_STATE",
    "NOT_FOUND",
}

T = TypeVar("T")


class TrackerUnavailable(DcganError):
    """The tracking store did not answer within the retry budget."""


def retry_seconds() -> float:
    """The retry budget: ``$DCGAN_TRACKING_RETRY_SECONDS`` or 60."""
    text = os.environ.get(RETRY_ENV, "").strip()
    if not text:
        return RETRY_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:  # also false for nan
        raise DcganError(
            f"{RETRY_ENV}={text!r} is not a number of seconds in (0, 3600]; "
            f"set it to e.g. 60, or unset it for the default {RETRY_SECONDS:.0f}"
        )
    return value


@contextmanager
def bounded_requests(timeout: int) -> Iterator[None]:
    """One try per call with a request timeout, for the block; the environment is put back."""
    names = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        # Closing a run on a server prints "View run at <tracking URI>", password and all;
        # Tracker.start logs the link without credentials instead.
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    with environ(names):
        yield


def _transient(exc: BaseException) -> bool:
    """Worth a retry: the store did not answer, or answered with a server-side error. A
    client error (see PERMANENT), our own errors and programming errors are raised at once."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code not in PERMANENT
    if isinstance(exc, OSError):  # also requests' connection errors and timeouts
        return True
    try:
        from sqlalchemy.exc import InterfaceError, OperationalError
    except ImportError:  # pragma: no cover - MLflow installs SQLAlchemy
        return False
    return isinstance(exc, (InterfaceError, OperationalError))


def cause(exc: BaseException) -> str:
    """A short reason, without URLs (MLflow's messages repeat the whole request URL)."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    if "timeout" in text.lower() or "timed out" in text.lower():
        return "timed out"
    status = re.search(r"error code (\d{3})", text)
    if status:
        return f"HTTP {status.group(1)}"
    return type(exc).__name__


def call_store(uri: str, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` against the store at ``uri``, retried with backoff for at most
    :func:`retry_seconds`; then :class:`TrackerUnavailable`, naming the store (password
    masked), what was being done and why."""
    budget = retry_seconds()
    deadline = time.monotonic() + budget
    delay, tries = 0.5, 0
    while True:
        left = deadline - time.monotonic()
        try:
            with bounded_requests(max(1, min(REQUEST_TIMEOUT_S, int(left)))):
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - MLflow wraps store errors in many types
            if not _transient(exc):
                raise
            tries += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise TrackerUnavailable(
                    f"MLflow tracking store {safe_uri(uri)} did not answer for {budget:.0f} s "
                    f"({what}: {cause(exc)}, {tries} tries; {RETRY_ENV} sets the budget)"
                ) from None
            log.warning(
                "MLflow tracking store %s: %s failed (%s); retrying for up to %.0f s more",
                safe_uri(uri),
                what,
                cause(exc),
                left,
            )
            time.sleep(min(delay, left))
            delay = min(delay * 2, 8.0)
