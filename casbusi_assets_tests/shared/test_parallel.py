"""The worker pool: core-count default, order, bounded look-ahead, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from casbusi_assets.shared import parallel
from casbusi_assets.shared.parallel import WorkerPool, default_workers, parallel_map
from casbusi_assets_tests.conftest import process_alive


def _square(x: int) -> int:
    return x * x


def _pid(_: int) -> int:
    return os.getpid()


def _torch_threads(_: int) -> tuple[str | None, int]:
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_workers_run_torch_on_one_thread_each_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with WorkerPool(2) as pool:
        assert set(pool.map(_torch_threads, range(2))) == {("1", 1)}
    assert "OMP_NUM_THREADS" not in os.environ  # the step process keeps every core
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with WorkerPool(2) as pool:
        assert set(pool.map(_torch_threads, range(2))) == {("2", 2)}


def test_default_is_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert default_workers() == 3
    assert parallel.resolve_workers(0) == 3 and parallel.resolve_workers(None) == 3
    assert parallel.resolve_workers(7) == 7


def test_map_keeps_input_order_across_processes() -> None:
    with WorkerPool(2) as pool:
        assert list(pool.map(_square, range(20))) == [x * x for x in range(20)]
        pids = set(pool.map(_pid, range(20)))
    assert os.getpid() not in pids  # the work ran in worker processes


def test_one_pool_serves_every_map_and_is_gone_after_the_block() -> None:
    with WorkerPool(2) as pool:
        first = set(pool.map(_pid, range(16)))
        second = set(pool.map(_pid, range(16)))
        assert len(first | second) <= 2  # the same two workers, not a new pool per map
    assert pool._executor is None  # shut down: no worker outlives the step


def test_only_a_window_of_items_is_taken_ahead() -> None:
    taken: list[int] = []

    def items():
        for i in range(1000):
            taken.append(i)
            yield i

    with WorkerPool(2) as pool:
        results = pool.map(_square, items(), window=4)
        assert next(results) == 0
        assert len(taken) <= 5  # the rest of the batch is not read ahead
        results.close()


def test_one_worker_runs_in_this_process() -> None:
    with WorkerPool(1) as pool:
        assert set(pool.map(_pid, range(3))) == {os.getpid()}
    assert list(parallel_map(_square, [1, 2, 3], workers=2)) == [1, 4, 9]


def _run_script(tmp_path: Path, body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )


def test_workers_exit_when_the_step_process_is_killed(tmp_path: Path) -> None:
    # A step killed with SIGKILL (a cancelled run, an OOM kill) runs no cleanup: its workers must
    # notice on their own instead of running on with nobody to read their results.
    pids_file = tmp_path / "pids"
    done = _run_script(
        tmp_path,
        f"""
        import os, signal, time
        from casbusi_assets.shared.parallel import WorkerPool

        if __name__ == "__main__":
            pool = WorkerPool(2)
            futures = [pool.submit(time.sleep, 600) for _ in range(2)]
            while len(pool._executor._processes) < 2:
                time.sleep(0.05)
            time.sleep(0.5)
            with open({str(pids_file)!r}, "w") as f:
                f.write(" ".join(str(p) for p in pool._executor._processes))
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert done.returncode == -signal.SIGKILL
    workers = [int(p) for p in pids_file.read_text().split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 30  # a liveness bound, not a speed figure
    while any(process_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if process_alive(p)]
    for p in left:  # never leave them behind, even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"


def test_a_script_without_a_main_guard_gets_a_clear_error(tmp_path: Path) -> None:
    # Spawned workers re-import the main script; one that starts a batch at module level would
    # otherwise run the batch again inside every worker, on the same home.
    done = _run_script(
        tmp_path,
        """
        from casbusi_assets.shared.parallel import WorkerPool, ensure_not_spawn_bootstrap

        ensure_not_spawn_bootstrap("run_batch")  # what run_batch does first
        with WorkerPool(2) as pool:
            print(list(pool.map(abs, [-1, -2, -3])))
        """,
    )
    assert done.returncode != 0
    assert "run_batch was called while a casbusi worker process was importing your script" in (
        done.stderr
    )
    assert 'if __name__ == "__main__":' in done.stderr


def test_run_batch_refuses_to_start_inside_a_worker_bootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    from casbusi_assets.runner import RunBatchError, run_batch
    from casbusi_assets.storage.home import layout

    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RunBatchError, match="__main__"):
        run_batch(tmp_path / "batch.zip", layout(tmp_path / "home"))
    assert not (tmp_path / "home").exists()  # nothing was written before the refusal


def test_a_prestarted_pool_is_taken_by_its_step_and_shut_down_with_it() -> None:
    parallel.prestart("test-purpose", 2, "json")
    try:
        pool = WorkerPool.take("test-purpose", 2)
        assert pool._executor is not None  # the workers started before the step asked
        with pool:
            before = set(pool.map(_pid, range(8)))
            assert os.getpid() not in before and len(before) <= 2
        assert pool._executor is None  # the step's block shut them down
        again = WorkerPool.take("test-purpose", 2)  # taken once: the next step starts its own
        assert again._executor is None
    finally:
        parallel.discard_prestarted("test-purpose")


def test_a_prestarted_pool_of_another_size_or_never_taken_is_shut_down() -> None:
    parallel.prestart("test-purpose", 2, "json")
    prestarted = parallel._PRESTARTED["test-purpose"]
    pool = WorkerPool.take("test-purpose", 3)
    assert pool is not prestarted and pool.workers == 3 and prestarted._executor is None
    parallel.prestart("test-purpose", 2, "json")
    prestarted = parallel._PRESTARTED["test-purpose"]
    parallel.discard_prestarted("test-purpose")
    assert prestarted._executor is None and "test-purpose" not in parallel._PRESTARTED
    parallel.prestart("test-purpose", 1, "json")  # one worker runs in-process: nothing to start
    assert "test-purpose" not in parallel._PRESTARTED


def test_progress_lines_wait_for_min_seconds_but_the_last_always_comes() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = parallel.Progress(lines.append, "ingest", 100, every_pct=10, min_seconds=5.0,
                                 clock=lambda: now[0])  # fmt: skip
    for _ in range(50):  # 50% done within the first second: no line yet
        now[0] += 0.02
        progress.advance()
    assert lines == []
    now[0] = 6.0
    progress.advance()  # 51%, 6 s after the start
    assert lines == ["ingest: 51/100 (51%)"]
    for _ in range(48):
        now[0] += 0.01
        progress.advance()
    assert len(lines) == 1  # 99% but only 0.5 s after the last line
    progress.advance()
    assert lines[-1] == "ingest: 100/100 (100%)"
