"""Training text for the encoder: the report corpus (pretraining, MNTP) and contrastive triples.

A triple is (anchor = a clean report, positive = one accepted equivalent variant of it, hard negatives =
up to k accepted error variants of the same report). Other reports in the batch are in-batch negatives;
rows of the same report are never each other's negatives (see `group` and contrastive.info_nce).

The data order is components.training.sampler.StepSampler's (a pure function of seed, step, rank).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from components.variants.base import EQUIVALENT_KINDS, ERROR_KIND


def _rows(path: Path, columns: list[str]) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the stage that writes it first")
    return pq.read_table(path, columns=columns).to_pylist()


def load_corpus(clean_dir: str | Path, splits: tuple[str, ...] = ("train",)) -> list[str]:
    """Clean report texts of the given splits, in table order (the sampler shuffles)."""
    rows = _rows(Path(clean_dir) / "reports.parquet", ["split", "text"])
    texts = [r["text"] for r in rows if r["split"] in splits and r["text"] and r["text"].strip()]
    if not texts:
        raise ValueError(f"no report text in splits {splits} of {clean_dir}")
    return texts


@dataclass(frozen=True)
class Triple:
    study_id: str
    group: int  # index of the report: rows with the same group are not each other's negatives
    anchor: str  # the clean report
    positive: str  # an accepted equivalent variant of it
    negatives: tuple[str, ...]  # accepted error variants of the same report (0..k)


def _variants_by_study(variants_dir: str | Path, split: str) -> dict[str, dict[str, list[str]]]:
    rows = _rows(Path(variants_dir) / "variants.parquet", ["study_id", "split", "kind", "text", "valid"])
    out: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        if r["split"] != split or not r["valid"] or not r["text"]:
            continue
        role = "pos" if r["kind"] in EQUIVALENT_KINDS else "neg" if r["kind"] == ERROR_KIND else None
        if role:
            out.setdefault(r["study_id"], {"pos": [], "neg": []})[role].append(r["text"])
    return out


def load_triples(clean_dir: str | Path, variants_dir: str | Path, split: str = "train",
                 hard_negatives: int = 2, seed: int = 0) -> list[Triple]:
    """One triple per accepted equivalent variant; its hard negatives drawn (seeded) from the same report."""
    reports = _rows(Path(clean_dir) / "reports.parquet", ["study_id", "split", "text"])
    variants = _variants_by_study(variants_dir, split)
    triples, group = [], -1
    for r in reports:
        v = variants.get(r["study_id"])
        if r["split"] != split or not v or not v["pos"]:
            continue
        group += 1
        for j, pos in enumerate(sorted(set(v["pos"]) - {r["text"]})):
            rng = random.Random(f"{seed}:{r['study_id']}:{j}")  # str seeds hash deterministically
            negs = sorted(set(v["neg"]) - {r["text"]})
            triples.append(Triple(r["study_id"], group, r["text"], pos,
                                  tuple(rng.sample(negs, min(hard_negatives, len(negs))))))
    if not triples:
        raise ValueError(f"no {split} report with an accepted equivalent variant in {variants_dir}")
    return triples


@dataclass(frozen=True)
class RetrievalSet:
    """Variant-to-original retrieval: each query is an equivalent variant; its answer is its report."""

    queries: list[str]
    gallery: list[str]  # the clean reports of the split
    target: list[int]  # gallery index of each query's report


def load_retrieval(clean_dir: str | Path, variants_dir: str | Path, split: str) -> RetrievalSet:
    reports = [r for r in _rows(Path(clean_dir) / "reports.parquet", ["study_id", "split", "text"])
               if r["split"] == split]
    variants = _variants_by_study(variants_dir, split)
    queries, target = [], []
    for i, r in enumerate(reports):
        for pos in sorted(set(variants.get(r["study_id"], {}).get("pos", [])) - {r["text"]}):
            queries.append(pos)
            target.append(i)
    return RetrievalSet(queries, [r["text"] for r in reports], target)


def text_digest(texts) -> str:
    """Identifies a run's input data in its run key (a changed corpus must not resume old state)."""
    h = hashlib.sha1()
    for t in texts:
        h.update(str(t).encode() + b"\0")
    return h.hexdigest()
