"""One way to fan work out over processes, with an in-process path for workers=1 (easy to debug)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager


@contextmanager
def ordered_map(fn: Callable, items: Iterable, workers: int, chunksize: int = 8) -> Iterator[Iterator]:
    """Yield an iterator of fn(item) in input order, computed by `workers` processes."""
    if workers <= 1:
        yield map(fn, items)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield pool.map(fn, items, chunksize=chunksize)
