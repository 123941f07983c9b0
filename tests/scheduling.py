"""The suite on pytest-xdist workers (./run test): one worker runs every slow test, in file
order, as a single process would, since they time training runs, kill them and measure their
own processes; the quick tests run on the others, in the cores the slow ones leave idle while
they wait on servers and subprocesses.

xdist's own `--dist loadgroup` would do it with an `xdist_group` mark, but it groups by a
suffix it writes into each test's nodeid, which pytest 9.2 no longer takes
(pytest-dev/pytest-xdist#1386): the groups are silently ignored. So the first worker writes
the slow tests' ids to a file, and the controller's scheduler reads it: the slow tests are
one unit of work, every quick test a unit of its own. The hooks are conftest's."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import Producer

SLOW_IDS_ENV = "DCGAN_SLOW_TEST_IDS"


def pytest_configure(config: pytest.Config) -> None:
    # The controller, before it starts the workers, which inherit the variable.
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        folder = tempfile.mkdtemp(prefix="dcgan-slow-tests-")
        os.environ[SLOW_IDS_ENV] = str(Path(folder) / "slow.txt")
        config.add_cleanup(functools.partial(shutil.rmtree, folder, ignore_errors=True))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = os.environ.get(SLOW_IDS_ENV)
    if path is None or not hasattr(config, "workerinput"):
        return
    # Every worker collects the same tests; the controller schedules once all have: the
    # first worker's list is the list.
    if config.workerinput["workerid"] == "gw0":
        slow = (item.nodeid for item in items if item.get_closest_marker("slow"))
        Path(path).write_text("".join(f"{nodeid}\n" for nodeid in slow))


class SlowOnOneWorker(LoadScopeScheduling):
    """LoadScopeScheduling, with the slow tests one unit: the largest, so it goes out first."""

    @functools.cached_property
    def slow(self) -> set[str]:
        path = os.environ.get(SLOW_IDS_ENV)
        return set(Path(path).read_text().splitlines()) if path else set()

    def _split_scope(self, nodeid: str) -> str:
        return "slow" if nodeid in self.slow else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> SlowOnOneWorker | None:
    # `-n N` alone means --dist load; another --dist asked for on the command line wins.
    return SlowOnOneWorker(config, log) if config.getoption("dist") == "load" else None
