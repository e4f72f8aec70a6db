"""Images stored as a few .npy shard files (memory-mappable) instead of thousands of small files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ShardWriter:
    """Append fixed-size uint8 images; each full shard is written as images/shard-NNNNN.npy."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder, self.shard_size = folder, shard_size
        self.folder.mkdir(parents=True, exist_ok=True)
        self.buffer: list[np.ndarray] = []
        self.n_shards = 0

    def add(self, pixels: np.ndarray) -> tuple[str, int]:
        """Queue one image; return (shard file name, index within it)."""
        location = (self._name(self.n_shards), len(self.buffer))
        self.buffer.append(pixels)
        if len(self.buffer) == self.shard_size:
            self.flush()
        return location

    def flush(self) -> None:
        if self.buffer:
            np.save(self.folder / self._name(self.n_shards), np.stack(self.buffer))
            self.buffer, self.n_shards = [], self.n_shards + 1

    @staticmethod
    def _name(i: int) -> str:
        return f"shard-{i:05d}.npy"


def load_image(ingest_dir: str | Path, shard: str, index: int) -> np.ndarray:
    """One image back from its shard, without reading the rest of the shard."""
    return np.load(Path(ingest_dir) / "images" / shard, mmap_mode="r")[index]
