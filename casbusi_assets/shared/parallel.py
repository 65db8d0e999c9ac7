"""Run a per-item function over many items, in worker processes when that pays off.

DICOM parsing and some decoders hold the GIL, so processes (not threads) are what uses a second
core. Workers are started with "spawn": a Dagster step process already runs threads, and forking
a threaded process can deadlock.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int = 1, chunksize: int = 1
) -> Iterator[R]:
    """Yield fn(item) in input order; in-process when workers <= 1 or there is one item.

    `fn` must be a module-level function (it is pickled by name for the workers). Processes,
    not threads: exporting 495 stills took 11.0 s with 2 processes, 17.7 s with 2 threads.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
        yield from pool.map(fn, items, chunksize=chunksize)


class Progress:
    """Reports `label: done/total (pct%)` through `report` each time another `every_pct` percent
    of the items is done (and at the end)."""

    def __init__(
        self, report: Callable[[str], None], label: str, total: int = 0, every_pct: float = 10.0
    ) -> None:
        self.report, self.label, self.total, self.every_pct = report, label, total, every_pct
        self.done = 0
        self._last_bucket = 0

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n, self.total)

    def update(self, done: int, total: int) -> None:
        """Callback form, e.g. `progress=Progress(log.info, "x").update`."""
        self.done, self.total = done, total
        pct = 100.0 * done / total if total else 100.0
        bucket = int(pct // self.every_pct)
        if bucket > self._last_bucket or done == total:
            self._last_bucket = bucket
            self.report(f"{self.label}: {done}/{total} ({pct:.0f}%)")
