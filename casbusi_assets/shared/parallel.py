"""Run a per-item function over many items, in worker processes when that pays off.

DICOM parsing and some decoders hold the GIL, so processes (not threads) are what uses a second
core. Workers are started with "spawn": a Dagster step process already runs threads, and forking
a threaded process can deadlock.

A `WorkerPool` is one set of worker processes for a whole step: every chunk of a batch goes
through the same workers (spawning costs ~1 s of imports per worker), and leaving the `with`
block shuts them down, so no worker outlives the run. Only a bounded window of items is in
flight at a time, so memory does not grow with the number of items. A worker also exits on its own
when its parent dies (a killed run, a crashed step), instead of being left to burn CPU.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items in flight per worker: enough that a worker never waits for the parent to hand it the
# next item, few enough that the queued inputs and finished results stay small.
IN_FLIGHT_PER_WORKER = 4

# How often an idle or busy worker checks that the process that started it is still alive.
PARENT_POLL_SECONDS = 1.0


class SpawnBootstrapError(RuntimeError):
    """Work was started while a spawned worker process was importing the caller's script."""


def ensure_not_spawn_bootstrap(what: str) -> None:
    """Refuse to start `what` inside a worker that is re-importing the caller's main module.

    Spawned workers import the script that started them. A script that calls run_batch (or any
    entry point that starts workers) at module level, without an `if __name__ == "__main__":`
    guard, would otherwise run the whole batch again in every worker, on the same home.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SpawnBootstrapError(
            f"{what} was called while a casbusi worker process was importing your script. "
            "Worker processes are started with 'spawn', which re-imports the main module: put "
            'the call under `if __name__ == "__main__":`.'
        )


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent_pid:  # re-parented: the step process is gone
            os._exit(1)


# Native thread pools a worker caps at one thread, unless the environment already sets them.
WORKER_THREAD_VARIABLES = ("OMP_NUM_THREADS",)


def _worker_start(parent_pid: int) -> None:
    """Initializer of every pool worker: one native thread per worker, and watch the parent
    from a daemon thread, because a worker blocked in a long item or waiting on its queue never
    notices the parent's death.

    The pool already puts one worker on each core; torch's default of a thread per core in
    every worker oversubscribed them (cleaned_images on 269 stills, 2 workers: 88 -> 56 CPU-s,
    45 -> 29 s). Set before the worker imports torch, which reads it once."""
    for variable in WORKER_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    threading.Thread(
        target=_exit_when_orphaned, args=(parent_pid,), name="casbusi-parent-watch", daemon=True
    ).start()


def default_workers() -> int:
    """The cores this process may run on: its CPU affinity (a container's or taskset's cpuset),
    not the machine's total, so a process pinned to 2 of 64 cores starts 2 workers."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if count is not None:
        n = count()
    else:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not on Linux
            n = os.cpu_count()
    return max(1, n or 1)


def resolve_workers(workers: int | None) -> int:
    """`workers` when it is 1 or more; 0 or None mean one worker per available core."""
    if workers is None or workers <= 0:
        return default_workers()
    return int(workers)


def _warm_up(module: str) -> None:
    """A pool worker's first item when started ahead of its step: import what its items need."""
    importlib.import_module(module)


# Pools started before their step (`prestart`), by purpose, for the step's `WorkerPool.take`.
_PRESTARTED: dict[str, WorkerPool] = {}


def prestart(purpose: str, workers: int | None, warm_module: str) -> None:
    """Start `purpose`'s workers now, in the background, importing `warm_module`.

    A command that knows a step with workers is coming (`casbusi run-batch`) calls this first,
    so the workers' start-up (spawn, ~1 s of imports each) runs on the other cores while this
    process imports Dagster and opens its instance, instead of after the step has started. The
    step adopts the pool with `WorkerPool.take(purpose, workers)` and shuts it down as usual;
    `discard_prestarted` shuts down a pool no step took (a failed run, another selection).
    """
    if purpose in _PRESTARTED:
        return
    pool = WorkerPool(workers)
    if not pool.parallel:
        return
    for _ in range(pool.workers):  # each submit with no idle worker spawns one
        pool.submit(_warm_up, warm_module)
    _PRESTARTED[purpose] = pool


def discard_prestarted(purpose: str | None = None) -> None:
    """Shut down pools started by `prestart` that no step took (all when purpose is None)."""
    for key in [purpose] if purpose is not None else list(_PRESTARTED):
        pool = _PRESTARTED.pop(key, None)
        if pool is not None:
            pool.close()


class WorkerPool:
    """Worker processes for one step, started on first use and reused for every later map.

    `workers` 0 or None = one per available core; 1 = run in the calling process (no workers).
    Use as a context manager: leaving it shuts the workers down (pending items are cancelled
    when the block is left by an exception).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = resolve_workers(workers)
        self._executor: ProcessPoolExecutor | None = None

    @classmethod
    def take(cls, purpose: str, workers: int | None = None) -> WorkerPool:
        """The pool `prestart(purpose, ...)` started, when it has this many workers; else a new
        one (a prestarted pool of another size is shut down)."""
        pool = _PRESTARTED.pop(purpose, None)
        if pool is not None and pool.workers == resolve_workers(workers):
            return pool
        if pool is not None:
            pool.close()
        return cls(workers)

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_worker_start,
                initargs=(os.getpid(),),
            )
        return self._executor

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        return self._pool().submit(fn, *args)

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], window: int | None = None
    ) -> Iterator[R]:
        """Yield fn(item) in input order, with at most `window` items in flight.

        `fn` must be a module-level function (it is pickled by name for the workers). Items are
        consumed lazily, so a generator of items is never materialised.
        """
        if not self.parallel:
            for item in items:
                yield fn(item)
            return
        window = max(1, window or self.workers * IN_FLIGHT_PER_WORKER)
        pool = self._pool()
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:  # only non-empty when the consumer stopped early or failed
                fut.cancel()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    chunksize: int = 1,
    pool: WorkerPool | None = None,
) -> Iterator[R]:
    """Yield fn(item) in input order; in-process when workers <= 1 or there is one item.

    `fn` must be a module-level function (it is pickled by name for the workers). Processes,
    not threads: exporting 495 stills took 11.0 s with 2 processes, 17.7 s with 2 threads.
    Pass `pool` to reuse a step's workers; otherwise a pool is started for this call and shut
    down when the iterator is exhausted or closed. `chunksize` is accepted for compatibility;
    items are submitted one by one within a bounded window.
    """
    del chunksize
    items = list(items)
    if pool is not None:
        yield from pool.map(fn, items)
        return
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    with WorkerPool(min(workers, len(items))) as own:
        yield from own.map(fn, items)


class Progress:
    """Reports `label: done/total (pct%)` through `report` each time another `every_pct` percent
    of the items is done (and at the end). With `min_seconds`, a line also waits until that long
    after the previous one: each line can be an event in a run's event log (~40 ms on SQLite),
    so a fast batch says less and a slow one still reports as it goes."""

    def __init__(
        self,
        report: Callable[[str], None],
        label: str,
        total: int = 0,
        every_pct: float = 10.0,
        min_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report, self.label, self.total, self.every_pct = report, label, total, every_pct
        self.min_seconds, self._clock = min_seconds, clock
        self.done = 0
        self._last_bucket = 0
        self._last_time = clock()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n, self.total)

    def update(self, done: int, total: int) -> None:
        """Callback form, e.g. `progress=Progress(log.info, "x").update`."""
        self.done, self.total = done, total
        pct = 100.0 * done / total if total else 100.0
        bucket = int(pct // self.every_pct)
        if done == total or (
            bucket > self._last_bucket and self._clock() - self._last_time >= self.min_seconds
        ):
            self._last_bucket = bucket
            self._last_time = self._clock()
            self.report(f"{self.label}: {done}/{total} ({pct:.0f}%)")
