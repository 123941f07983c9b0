"""Start, wait for, check and stop the stack's processes, on psutil. A process is ours only
while its PID, start time and command line are the ones recorded when we started it: a PID
saved in .stack/ may belong to another process after a reboot, and that one is left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from dcgan.errors import DcganError

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Proc:
    """What identifies a process we started: PID, start time (psutil's, seconds since the
    epoch) and command line (empty until the process answers: see ``settle``)."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time, "cmdline": list(self.cmdline)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proc:
        return cls(int(data["pid"]), float(data["create_time"]), tuple(map(str, data["cmdline"])))

    @classmethod
    def of(cls, pid: int) -> Proc:
        process = psutil.Process(pid)
        return cls(pid, process.create_time(), tuple(process.cmdline()))


def settle(proc: Proc) -> Proc:
    """``proc`` with its command line, read once it has started: right after exec the kernel
    may still show the parent's (Popen returns when the exec closes its pipe, before the new
    arguments are in place)."""
    if ours(proc) is None:
        raise DcganError(f"process {proc.pid} stopped while starting")
    return Proc.of(proc.pid)


def spawn(command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> Proc:
    """Start ``command`` in a session of its own (it outlives ``dcgan stack up``; ``stop``
    ends its whole group), output appended to ``log_path``. Popen returns once the command is
    exec'd; the command line is recorded by ``settle`` once the process answers."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            umask=0o077,  # its files (user store, objects, logs) are private
        )
    return Proc(proc.pid, psutil.Process(proc.pid).create_time(), ())


def ours(proc: Proc | None) -> psutil.Process | None:
    """The live process ``proc`` recorded, or None: gone, a zombie, or another process that
    now has its PID (another start time, or another command line once one is recorded)."""
    if proc is None:
        return None
    try:
        process = psutil.Process(proc.pid)
        same = process.create_time() == proc.create_time and (
            not proc.cmdline or process.cmdline() == list(proc.cmdline)
        )
        return process if same and process.status() != psutil.STATUS_ZOMBIE else None
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another user's: not one we started
        return None


def describe(proc: Proc | None) -> str:
    """``running``, ``stopped``, or that the PID now belongs to another process."""
    if ours(proc) is not None:
        return "running"
    if proc is not None and psutil.pid_exists(proc.pid):
        with contextlib.suppress(psutil.Error):
            if psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
                return f"stopped (PID {proc.pid} is another process now, left alone)"
    return "stopped"


def stop(proc: Proc | None, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Send ``sig`` to the process group ``proc`` leads, then SIGKILL what is left after
    ``timeout`` seconds; wait for all of it. Nothing is sent unless the leader is ours."""
    leader = ours(proc)
    if leader is None or proc is None:
        return
    group = [leader, *_group_members(proc.pid, leader)]
    for signal_, wait in ((sig, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal_)
        _, alive = psutil.wait_procs(group, timeout=wait)
        _reap(proc.pid)
        if not alive:
            return
        group = alive


def _group_members(pgid: int, leader: psutil.Process) -> list[psutil.Process]:
    """The leader's descendants still in its group (none if it has just exited)."""
    try:
        children = leader.children(recursive=True)
    except psutil.Error:
        return []
    members = []
    for child in children:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(child.pid) == pgid:
                members.append(child)
    return members


def _reap(pid: int) -> None:
    """Collect the exit status of a process this one started (a zombie otherwise)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def start(
    command: list[str],
    log_path: Path,
    cwd: Path,
    ready: Callable[[], bool],
    what: str,
    env: dict[str, str] | None = None,
) -> Proc:
    """Spawn ``command`` and return it once ``ready()`` holds, its command line recorded; if
    it dies or does not answer in time, stop it and say so in one line naming the log."""
    proc = spawn(command, log_path, cwd, env)
    try:
        wait_until(ready, proc, what, log_path)
        return settle(proc)
    except BaseException:
        stop(proc)
        raise


def http_answers(url: str, ok_only: bool = False) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return not ok_only  # S3 answers 403 to an anonymous request: it is up
    except OSError:
        return False


def wait_until(ready: Callable[[], bool], proc: Proc, what: str, log_path: Path) -> None:
    """Poll ``ready`` until it holds; one line naming the log if ``proc`` dies first or
    START_TIMEOUT_S passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if ours(proc) is None or time.monotonic() > deadline:
            raise DcganError(f"{what} did not start within {START_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.3)
