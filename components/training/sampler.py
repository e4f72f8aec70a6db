"""`StepSampler` makes the data order a pure function of (seed, step, rank): a resumed run needs nothing but
the step to continue exactly where it stopped, and DDP ranks read disjoint shards of every global batch."""

from __future__ import annotations

import hashlib
import random


class StepSampler:
    """Item indices for (step, rank): an endless stream of seeded epoch permutations, cut into global
    batches of `batch_size * world` items; rank r takes every world-th item of its global batch
    (DistributedSampler-like). Small corpora wrap around epochs inside one batch."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1):
        if n <= 0:
            raise ValueError("nothing to sample from")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self._epochs: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._epochs:
            order = list(range(self.n))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._epochs = {e: o for e, o in self._epochs.items() if e == epoch - 1}  # a batch spans <= 2
            self._epochs[epoch] = order
        return self._epochs[epoch]

    def global_batch(self, step: int) -> list[int]:
        size = self.batch_size * self.world
        return [self._perm(p // self.n)[p % self.n] for p in range(step * size, (step + 1) * size)]

    def indices(self, step: int) -> list[int]:
        return self.global_batch(step)[self.rank::self.world]


def digest(items) -> str:
    """A short stable hash of a batch (logged per rank to show DDP shards differ)."""
    return hashlib.sha1(repr(list(items)).encode()).hexdigest()[:12]
