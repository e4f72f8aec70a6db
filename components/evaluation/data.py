"""What the evaluation reads: one split of a cleaned dataset (reports, labels, and images when ingested)
and the retrieval corpus (the reports of another split)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from components.chexpert import OBSERVATIONS


@dataclass
class EvalSplit:
    name: str
    study_ids: list[str]
    texts: list[str]
    findings: list[str | None]
    impressions: list[str | None]
    labels: np.ndarray  # (n, 14): 1 / 0 / -1 / NaN, in OBSERVATIONS order
    images: list[tuple[str, int]] | None  # (shard, index) of each study's first frontal image; None: text-only
    ingest_dir: Path | None
    no_image: int = 0  # studies of the split with a report but no ingested image (left out of image metrics)

    def frames(self) -> list[np.ndarray]:
        from components.ingest.shards import load_image

        return [np.asarray(load_image(self.ingest_dir, shard, index)) for shard, index in self.images]

    @property
    def positives(self) -> np.ndarray:
        return self.labels == 1.0


def _reports(clean_dir: Path, split: str) -> list[dict]:
    path = clean_dir / "reports.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the clean stage on this dataset first")
    cols = ["study_id", "split", "text", "findings", "impression", *OBSERVATIONS]
    rows = [r for r in pq.read_table(path, columns=cols).to_pylist() if r["split"] == split and (r["text"] or "").strip()]
    return sorted(rows, key=lambda r: r["study_id"])


def _labels(rows: list[dict]) -> np.ndarray:
    return np.array([[np.nan if r[o] is None else r[o] for o in OBSERVATIONS] for r in rows],
                    dtype=np.float64).reshape(len(rows), len(OBSERVATIONS))


def load_split(name: str, clean_dir, split: str = "test", ingest_dir=None) -> EvalSplit:
    """The split's reports; with `ingest_dir`, only studies that have an image are kept, paired with it."""
    rows = _reports(Path(clean_dir), split)
    if not rows:
        raise ValueError(f"dataset {name!r}: no {split} report in {clean_dir}")
    images, no_image = None, 0
    if ingest_dir is not None:
        table = Path(ingest_dir) / "images.parquet"
        if not table.exists():
            raise FileNotFoundError(f"{table} does not exist: run the ingest stage on dataset {name!r} first")
        first: dict[str, tuple[str, int]] = {}
        for r in sorted(pq.read_table(table, columns=["image_id", "study_id", "shard", "index"]).to_pylist(),
                        key=lambda r: r["image_id"]):
            first.setdefault(r["study_id"], (r["shard"], int(r["index"])))
        no_image = sum(r["study_id"] not in first for r in rows)
        rows = [r for r in rows if r["study_id"] in first]
        if not rows:
            raise ValueError(f"dataset {name!r}: no {split} study has an ingested image in {ingest_dir}")
        images = [first[r["study_id"]] for r in rows]
    return EvalSplit(name, [r["study_id"] for r in rows], [r["text"] for r in rows],
                     [r["findings"] or None for r in rows], [r["impression"] or None for r in rows], _labels(rows),
                     images, Path(ingest_dir) if ingest_dir is not None else None, no_image)


@dataclass
class Corpus:
    """The report bank retrieval draws from (distinct texts of one split) with their labels."""

    texts: list[str]
    labels: np.ndarray

    @property
    def positives(self) -> np.ndarray:
        return self.labels == 1.0


def load_corpus(clean_dir, split: str = "train") -> Corpus:
    rows, seen = [], set()
    for r in _reports(Path(clean_dir), split):
        if r["text"] not in seen:
            seen.add(r["text"])
            rows.append(r)
    if not rows:
        raise ValueError(f"no {split} report in {clean_dir} to retrieve from")
    return Corpus([r["text"] for r in rows], _labels(rows))


def same_text(texts: list[str]) -> np.ndarray:
    """(n, n) mask: report j is a correct match for study i when its text is word for word study i's
    (templated normal reports repeat; retrieving an identical text is not an error)."""
    index: dict[str, int] = {}
    ids = np.array([index.setdefault(t, len(index)) for t in texts])
    return ids[:, None] == ids[None, :]
