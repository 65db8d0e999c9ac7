"""The worker pool: core-count default, order, bounded look-ahead, shutdown."""

from __future__ import annotations

import os

import pytest

from casbusi_assets.shared import parallel
from casbusi_assets.shared.parallel import WorkerPool, default_workers, parallel_map


def _square(x: int) -> int:
    return x * x


def _pid(_: int) -> int:
    return os.getpid()


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
