"""`casbusi ui`'s supervisor: a kill of the parent stops every child and grandchild."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from casbusi_assets.shared.processes import supervise
from casbusi_assets_tests.conftest import process_alive


def _wait_for(path: Path, lines: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= lines:
                return pids
        time.sleep(0.1)
    raise AssertionError(f"children did not start: {path}")


def test_term_to_the_parent_stops_children_and_grandchildren(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # Each child forks a grandchild that would keep serving (like Dagster's code servers).
    child = f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    script = textwrap.dedent(
        f"""
        import sys
        from casbusi_assets.shared.processes import supervise
        sys.exit(supervise([["sh", "-c", {child!r}], ["sh", "-c", {child!r}]]))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    started = _wait_for(pids, 4)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 15
    while any(process_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in started if process_alive(p)] == []


def test_one_child_ending_stops_the_others_and_returns_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "long.pid"
    started = time.monotonic()
    code = supervise(
        [["sh", "-c", "sleep 0.5; exit 3"], ["sh", "-c", f"echo $$ > {marker}; exec sleep 300"]],
        poll_seconds=0.1,
    )
    assert code == 3
    assert time.monotonic() - started < 30
    assert not process_alive(int(marker.read_text()))
