"""A variant cache keyed by everything that determines a variant, so re-runs are incremental and a
run killed half-way resumes without regenerating what it finished (SQLite commits per batch)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from components.variants.base import Variant, VariantRequest


def cache_key(request: VariantRequest, backend: str, model: str, prompt_version: str) -> str:
    text_hash = hashlib.sha256(request.text.encode()).hexdigest()
    parts = [text_hash, request.kind, request.error_category or "", backend, model, prompt_version,
             str(request.seed)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class VariantCache:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS variants (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()

    def get_many(self, keys: list[str]) -> dict[str, Variant]:
        found: dict[str, Variant] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            rows = self.db.execute(f"SELECT key, value FROM variants WHERE key IN ({','.join('?' * len(chunk))})",
                                   chunk)
            for key, value in rows:
                data = json.loads(value)
                span = data.pop("changed_span")
                found[key] = Variant(**data, changed_span=tuple(span) if span else None)
        return found

    def put_many(self, items: dict[str, Variant]) -> None:
        rows = [(k, json.dumps({"text": v.text, "detail": v.detail, "changed_span": v.changed_span,
                                "failure": v.failure})) for k, v in items.items()]
        with self.db:  # one transaction: a kill loses at most the batch in flight
            self.db.executemany("INSERT OR REPLACE INTO variants VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM variants").fetchone()[0]

    def close(self) -> None:
        self.db.close()
