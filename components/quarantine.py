"""The quarantine table every stage writes: each dropped record with a reason code, never silently."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

SCHEMA = pa.schema([
    ("level", pa.string()), ("record_id", pa.string()), ("study_id", pa.string()), ("stage", pa.string()),
    ("reason", pa.string()), ("detail", pa.string()),
])


class Quarantine(list):
    """Rows for quarantine.parquet; `detail` says why without repeating any PHI."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def add(self, level: str, record_id: str, study_id: str, reason: str, detail: str = "") -> None:
        self.append({"level": level, "record_id": printable(record_id), "study_id": printable(study_id),
                     "stage": self.stage, "reason": reason, "detail": printable(detail)})

    def counts(self, level: str) -> tuple[int, dict[str, int]]:
        rows = [q for q in self if q["level"] == level]
        return len(rows), dict(sorted(Counter(q["reason"] for q in rows).items()))


def printable(value) -> str:
    """A value that can be stored and shown: undecodable bytes (kept by surrogateescape) as \\xNN."""
    text = "" if value is None else str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def recount(n_in: int, n_out: int, quarantine_path, level: str = "study") -> dict:
    """Conservation from the written tables: rows in = rows out + rows quarantined at `level`."""
    import pandas as pd

    q = int((pd.read_parquet(quarantine_path, columns=["level"])["level"] == level).sum())
    return {"in": n_in, "out": n_out, "quarantined": q, "ok": n_in == n_out + q}
