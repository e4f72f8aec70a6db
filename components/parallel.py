"""One way to fan work out over processes, with an in-process path for workers=1 (easy to debug).

Workers are our own forked processes rather than a ProcessPoolExecutor, for two reasons:
- a worker lost to the OOM killer (or a segfaulting decoder) breaks a ProcessPoolExecutor for every
  item at once; here only its chunk is affected: the chunk is retried item by item, and an item whose
  worker dies again comes back as WorkerCrashed while the rest completes;
- workers die with their parent (PR_SET_PDEATHSIG), so a SIGKILLed stage leaves no orphans behind.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import wait

_PR_SET_PDEATHSIG = 1


class WorkerCrashed:
    """The result of an item whose worker process died twice while handling it."""

    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        self.detail = (f"worker killed by signal {-exitcode}" if exitcode and exitcode < 0
                       else f"worker exited with status {exitcode}") + " twice (out of memory?)"

    def __repr__(self) -> str:
        return f"WorkerCrashed({self.detail})"


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_stopped: list[int] = []  # stop signals received by this process


def request_stop(signum: int) -> None:
    """A stop signal's handler: unwind now (SystemExit). Python swallows an exception raised while a
    finalizer or fork hook runs, so the request is also remembered and raise_if_stopped() re-raises it."""
    _stopped.append(signum)
    raise SystemExit(128 + signum)


def raise_if_stopped() -> None:
    if _stopped:
        raise SystemExit(128 + _stopped[0])


def _worker(conn, fn: Callable) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent around the fork
    while True:
        try:
            chunk = conn.recv()
        except EOFError:
            return
        if chunk is None:
            return
        conn.send([fn(item) for item in chunk])


@contextmanager
def ordered_map(fn: Callable, items: Sequence, workers: int, max_chunk: int = 16) -> Iterator[Iterator]:
    """Yield an iterator of fn(item) in input order, computed by `workers` processes.

    Chunks amortise inter-process overhead, but at least four per worker keep the load balanced
    when items are few and slow (large images). Leaving the block stops every worker.
    """
    if workers <= 1:
        yield map(fn, items)
        return
    pool = _Pool(fn, workers)
    try:
        chunksize = max(1, min(max_chunk, len(items) // (4 * workers)))
        yield pool.run(items, chunksize)
    finally:
        pool.close()


class _Pool:
    def __init__(self, fn: Callable, workers: int):
        self.fn, self.size = fn, workers
        self.ctx = mp.get_context("fork")  # fn may be a closure or partial: nothing to pickle
        self.procs: dict = {}  # conn -> [process, task or None]

    def _spawn(self) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, self.fn), daemon=True)
        # A stop signal handled inside fork()'s hooks would be swallowed ("Exception ignored"): hold it
        # until the fork is done, then it unwinds the stage as usual.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        child.close()
        self.procs[parent] = [proc, None]

    def run(self, items: Sequence, chunksize: int) -> Iterator:
        items = list(items)
        # task: (first index, count, attempt); a crashed chunk is retried one item per task
        todo = deque((i, min(chunksize, len(items) - i), 0) for i in range(0, len(items), chunksize))
        done: dict[int, object] = {}
        next_out = 0
        while next_out < len(items):
            raise_if_stopped()
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            if next_out >= len(items):
                break
            while len(self.procs) < min(self.size, len(todo) + self._busy()):
                self._spawn()
            for conn, slot in self.procs.items():
                if slot[1] is None and todo:
                    slot[1] = todo.popleft()
                    start, count, _ = slot[1]
                    conn.send(items[start:start + count])
            ready = wait(list(self.procs) + [slot[0].sentinel for slot in self.procs.values()])
            for conn in [c for c in list(self.procs) if c in ready or self.procs[c][0].sentinel in ready]:
                proc, task = self.procs[conn]
                try:
                    results = conn.recv() if conn.poll() else None
                except (EOFError, OSError):
                    results = None
                if results is not None:
                    start, _, _ = task
                    done.update((start + k, r) for k, r in enumerate(results))
                    self.procs[conn][1] = None
                    continue
                if proc.is_alive():  # woken by a sentinel race; nothing to read yet
                    continue
                proc.join()
                del self.procs[conn]
                conn.close()
                if task is None:
                    continue
                start, count, attempt = task
                if attempt == 0:  # retry once, item by item, so one bad item cannot sink its chunk
                    todo.extendleft((start + k, 1, 1) for k in reversed(range(count)))
                else:
                    done[start] = WorkerCrashed(proc.exitcode)

    def _busy(self) -> int:
        return sum(1 for _, task in self.procs.values() if task is not None)

    def close(self) -> None:
        for conn, (proc, _) in self.procs.items():
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            conn.close()
        for proc, _ in self.procs.values():
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.procs.clear()
