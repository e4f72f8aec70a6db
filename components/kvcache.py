"""A small persistent key -> value store (SQLite): caches that survive re-runs and kills.

Each `put_many` is one transaction, so a process killed mid-run loses at most the batch in flight.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SqliteCache:
    def __init__(self, path: str | Path):
        path = Path(path)
        if path.exists() and not path.is_file():
            raise ValueError(f"cache {path} is not a file; point the cache setting at a file path")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path)
            self.db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self.db.commit()
        except sqlite3.DatabaseError as e:  # a corrupt or foreign file: say which, never overwrite it
            raise ValueError(f"cache {path} is not a usable SQLite cache ({e}); move it aside to rebuild it") from None

    def get_many(self, keys: list[str]) -> dict:
        found = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            found.update(self.db.execute(
                f"SELECT key, value FROM cache WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def put_many(self, items: dict) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?)", list(items.items()))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]

    def close(self) -> None:
        self.db.close()
