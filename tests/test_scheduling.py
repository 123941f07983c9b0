"""How ./run test spreads the suite over pytest-xdist's workers (tests/scheduling.py): every
slow test on one worker, in file order; the quick tests beside them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

MODULE = """import time
import pytest

@pytest.mark.slow
def test_s1(): time.sleep(0.3)
def test_q1(): pass
@pytest.mark.slow
def test_s2(): time.sleep(0.3)
def test_q2(): pass
@pytest.mark.slow
def test_s3(): time.sleep(0.3)
"""


def test_the_slow_tests_run_on_one_worker_in_file_order_and_the_quick_ones_beside_them(
    tmp_path,
):
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "from scheduling import (\n"
        "    pytest_collection_modifyitems, pytest_configure, pytest_xdist_make_scheduler\n"
        ")\n"
    )
    (tmp_path / "test_a.py").write_text(MODULE)
    (tmp_path / "test_b.py").write_text(MODULE.replace("_s", "_t").replace("_q", "_r"))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "scheduling tests via SlowOnOneWorker" in proc.stdout
    ran = re.findall(r"^\[(gw\d)\] .*PASSED (\S+)", proc.stdout, re.MULTILINE)
    assert len(ran) == 10, proc.stdout[-3000:]
    slow = [(worker, test) for worker, test in ran if re.search(r"::test_[st]\d$", test)]
    assert [test for _, test in slow] == [
        f"test_{m}.py::test_{k}{i}" for m, k in (("a", "s"), ("b", "t")) for i in (1, 2, 3)
    ]
    (slow_worker,) = {worker for worker, _ in slow}
    quick_workers = {worker for worker, test in ran if (worker, test) not in slow}
    assert quick_workers - {slow_worker}  # the other worker ran quick tests meanwhile
