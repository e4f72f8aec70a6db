"""One way to fan work out over processes, with an in-process path for workers=1 (easy to debug)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager


@contextmanager
def ordered_map(fn: Callable, items: Sequence, workers: int, max_chunk: int = 16) -> Iterator[Iterator]:
    """Yield an iterator of fn(item) in input order, computed by `workers` processes.

    Chunks amortise inter-process overhead, but at least four per worker keep the load balanced
    when items are few and slow (large images).
    """
    if workers <= 1:
        yield map(fn, items)
        return
    chunksize = max(1, min(max_chunk, len(items) // (4 * workers)))
    with ProcessPoolExecutor(workers) as pool:
        yield pool.map(fn, items, chunksize=chunksize)
