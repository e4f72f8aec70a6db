"""Image-report pairs for CLIP training: one frontal image per study, its report, its sections and its
accepted *equivalent* variants (error variants are never positives: they are different findings).

Every random choice of an item (which text, which section, the shuffle, the augmentation) is drawn from
a generator seeded by (seed, step, item), so a batch is a pure function of the step: a resumed run and a
DDP run with any number of ranks see exactly the items and texts a single uninterrupted run sees.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from components.variants.base import EQUIVALENT_KINDS


@dataclass(frozen=True)
class Study:
    study_id: str
    shard: str  # ingest image shard file and row of the study's first frontal image
    index: int
    report: str
    findings: str | None = None
    impression: str | None = None
    variants: tuple[str, ...] = ()  # accepted equivalent variants


def _table(path: Path, columns: list[str]) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the stage that writes it first")
    return pq.read_table(path, columns=columns).to_pylist()


def load_studies(ingest_dir, clean_dir, variants_dir, split: str) -> tuple[list[Study], dict]:
    """Studies of `split` with a clean report and an ingested image, sorted by id; and counts of the
    studies left out (text-only studies have no image to pair with)."""
    images: dict[str, tuple[str, int]] = {}
    for r in sorted(_table(Path(ingest_dir) / "images.parquet", ["image_id", "study_id", "shard", "index"]),
                    key=lambda r: r["image_id"]):
        images.setdefault(r["study_id"], (r["shard"], r["index"]))
    variants: dict[str, list[str]] = {}
    for r in _table(Path(variants_dir) / "variants.parquet", ["study_id", "kind", "text", "valid"]):
        if r["valid"] and r["kind"] in EQUIVALENT_KINDS and r["text"]:
            variants.setdefault(r["study_id"], []).append(r["text"])
    studies, no_image = [], 0
    for r in _table(Path(clean_dir) / "reports.parquet", ["study_id", "split", "text", "findings", "impression"]):
        if r["split"] != split or not (r["text"] or "").strip():
            continue
        if r["study_id"] not in images:
            no_image += 1
            continue
        shard, index = images[r["study_id"]]
        studies.append(Study(r["study_id"], shard, int(index), r["text"], r["findings"] or None,
                             r["impression"] or None, tuple(sorted(set(variants.get(r["study_id"], [])) - {r["text"]}))))
    studies.sort(key=lambda s: s.study_id)
    return studies, {"studies": len(studies), "without_image": no_image}


@dataclass(frozen=True)
class TextSampling:
    variant_rate: float = 0.5  # share of draws that take an accepted equivalent variant instead of the report
    sections: dict = field(default_factory=lambda: {"full": 0.5, "findings": 0.25, "impression": 0.25})
    shuffle_rate: float = 0.0  # share of draws whose sentences are reordered
    shuffle_pool: int = 2  # distinct seeded orders per text: cached mode encodes each once


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def shuffled(text: str, k: int) -> str:
    """Order k (seeded by the text) of the text's sentences."""
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    rng = random.Random(hashlib.sha256(f"{k}:{text}".encode()).hexdigest())
    rng.shuffle(sentences)
    return " ".join(sentences)


def _sections(study: Study) -> dict[str, str]:
    return {"full": study.report, **({"findings": study.findings} if study.findings else {}),
            **({"impression": study.impression} if study.impression else {})}


def item_rng(seed: int, step: int, item: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, item])


def draw_text(study: Study, cfg: TextSampling, rng: np.random.Generator) -> tuple[str, str]:
    """(text, section) for one item of one step."""
    if study.variants and rng.random() < cfg.variant_rate:
        text, section = study.variants[int(rng.integers(len(study.variants)))], "full"
    else:
        options = {s: t for s, t in _sections(study).items() if cfg.sections.get(s, 0) > 0} or {"full": study.report}
        names = sorted(options)
        weights = np.array([cfg.sections.get(s, 1.0) for s in names], dtype=float)
        section = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        text = options[section]
    if cfg.shuffle_rate > 0 and rng.random() < cfg.shuffle_rate:
        text = shuffled(text, int(rng.integers(cfg.shuffle_pool)))
    return text, section


def candidate_texts(study: Study, cfg: TextSampling) -> set[tuple[str, str]]:
    """Every (text, section) `draw_text` can return for the study: what cached mode encodes up front."""
    base = {(v, "full") for v in study.variants} if cfg.variant_rate > 0 else set()
    base |= {(t, s) for s, t in _sections(study).items() if cfg.sections.get(s, 0) > 0} or {(study.report, "full")}
    if cfg.shuffle_rate > 0:
        base |= {(shuffled(t, k), s) for t, s in list(base) for k in range(cfg.shuffle_pool)}
    return base


@dataclass(frozen=True)
class ImageSpec:
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_scale: tuple[float, float] = (0.85, 1.0)
    max_degrees: float = 5.0
    jitter: float = 0.1


class ClipDataset:
    """Map-style dataset of (step, item) keys over the memory-mapped ingest shards (opened lazily in each
    DataLoader worker). Returns the augmented image tensor and the drawn text of the item."""

    def __init__(self, studies: list[Study], ingest_dir, image: ImageSpec, text: TextSampling, seed: int,
                 train: bool = True):
        self.studies, self.folder = studies, Path(ingest_dir) / "images"
        self.image, self.text, self.seed, self.train = image, text, seed, train
        self._shards: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.studies)

    def frame(self, item: int) -> np.ndarray:
        s = self.studies[item]
        if s.shard not in self._shards:
            self._shards[s.shard] = np.load(self.folder / s.shard, mmap_mode="r")
        return np.asarray(self._shards[s.shard][s.index])

    def __getitem__(self, key: tuple[int, int]) -> dict:
        from components.clip.preprocess import to_tensor

        step, item = key
        rng = item_rng(self.seed, step, item)
        text, section = draw_text(self.studies[item], self.text, rng) if self.train else (self.studies[item].report, "full")
        im = self.image
        tensor = to_tensor(self.frame(item), im.size, im.mean, im.std, train=self.train, rng=rng,
                           crop_scale=im.crop_scale, max_degrees=im.max_degrees, jitter=im.jitter)
        return {"item": item, "image": tensor, "text": text, "section": section}


def collate(rows: list[dict]) -> dict:
    import torch

    return {"items": [r["item"] for r in rows], "images": torch.stack([r["image"] for r in rows]),
            "texts": [r["text"] for r in rows], "sections": [r["section"] for r in rows]}


class StepBatches:
    """Batch sampler: the (step, item) keys of each micro-batch from `start` on, in the order the training
    loop consumes them (micro-batch k of a step = every accumulate-th item of the rank's share)."""

    def __init__(self, sampler, start: int, steps: int, accumulate: int = 1):
        self.sampler, self.start, self.steps, self.accumulate = sampler, start, steps, accumulate

    def __iter__(self):
        for step in range(self.start, self.steps):
            idx = self.sampler.indices(step)
            for k in range(self.accumulate):
                yield [(step, i) for i in idx[k::self.accumulate]]

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accumulate


def loader(dataset: ClipDataset, sampler, start: int, steps: int, accumulate: int, workers: int):
    """A DataLoader that prefetches the batches of steps [start, steps) with `workers` processes."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=StepBatches(sampler, start, steps, accumulate), num_workers=workers,
                      collate_fn=collate, prefetch_factor=4 if workers else None, persistent_workers=False)
