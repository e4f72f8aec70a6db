"""Cached mode's text side: every (text, instruction) the sampler can draw, encoded once by the frozen
encoder. Vectors come from the embed stage's output when it was made by the same encoder (content
hash), then from the per-encoder SQLite cache the embed stage shares, and only the rest (section texts,
section instructions, shuffled orders, other towers) is encoded and added to that cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from components.kvcache import SqliteCache

log = logging.getLogger(__name__)


def text_key(text: str, instruction: str | None) -> str:
    """The embed stage's key (sha256 of the text) under the encoder's default instruction; the
    instruction is part of the key otherwise."""
    blob = text if instruction is None else f"{instruction}\x00{text}"
    return hashlib.sha256(blob.encode()).hexdigest()


def _from_embeddings(embeddings_dir: Path, encoder_hash: str, clean_dir: Path, variants_dir: Path) -> dict[str, np.ndarray]:
    """key -> vector of the embed stage's output, when that output was made by this very encoder."""
    meta = embeddings_dir / "meta.json"
    if not meta.exists() or json.loads(meta.read_text()).get("encoder_hash") != encoder_hash:
        return {}
    found = {}
    reports = pd.read_parquet(embeddings_dir / "reports.parquet", columns=["study_id"])
    texts = pd.read_parquet(clean_dir / "reports.parquet", columns=["study_id", "text"]).set_index("study_id")["text"]
    for sid, vec in zip(reports["study_id"], np.load(embeddings_dir / "reports.npy", mmap_mode="r")):
        if sid in texts.index:
            found[text_key(texts[sid], None)] = np.asarray(vec, np.float32)
    variants = pd.read_parquet(embeddings_dir / "variants.parquet", columns=["variant_id"])
    vtexts = pd.read_parquet(variants_dir / "variants.parquet", columns=["variant_id", "text"]).set_index("variant_id")["text"]
    for vid, vec in zip(variants["variant_id"], np.load(embeddings_dir / "variants.npy", mmap_mode="r")):
        if vid in vtexts.index and vtexts[vid]:
            found[text_key(vtexts[vid], None)] = np.asarray(vec, np.float32)
    return found


class TextVectors:
    """key -> row of one float32 matrix, for the lookups of every training step."""

    def __init__(self, keys: list[str], matrix: np.ndarray):
        self.row = {k: i for i, k in enumerate(keys)}
        self.matrix = matrix

    def lookup(self, pairs: list[tuple[str, str | None]]) -> np.ndarray:
        return self.matrix[[self.row[text_key(t, i)] for t, i in pairs]]


def build_vectors(encoder, encoder_hash: str, pairs: set[tuple[str, str | None]], cache_dir: str | Path,
                  embeddings_dir: str | Path, clean_dir: str | Path, variants_dir: str | Path,
                  batch_size: int = 64, encode: bool = True) -> tuple[TextVectors, dict]:
    """Vectors of every (text, instruction) pair. encode=False (non-zero DDP ranks, after rank 0 filled
    the cache) fails on anything missing instead of encoding it a second time."""
    pairs = sorted(pairs, key=lambda p: (p[1] or "", p[0]))
    keys = [text_key(t, i) for t, i in pairs]
    known = _from_embeddings(Path(embeddings_dir), encoder_hash, Path(clean_dir), Path(variants_dir))
    vectors = {k: known[k] for k in keys if k in known}
    cache = SqliteCache(Path(cache_dir) / f"{encoder_hash}.sqlite")
    try:
        cached = cache.get_many([k for k in keys if k not in vectors])
        vectors.update({k: np.frombuffer(v, dtype=np.float32) for k, v in cached.items()})
        missing = [(k, p) for k, p in zip(keys, pairs) if k not in vectors]
        missing = list({k: p for k, p in missing}.items())
        if missing and not encode:
            raise RuntimeError(f"{len(missing)} text vectors missing from the cache after rank 0 filled it")
        for instruction in sorted({p[1] for _, p in missing}, key=lambda x: x or ""):
            group = [(k, p[0]) for k, p in missing if p[1] == instruction]
            encoded = encoder.encode([t for _, t in group], instruction=instruction, batch_size=batch_size)
            made = {k: v.astype(np.float32) for (k, _), v in zip(group, encoded)}
            cache.put_many({k: v.tobytes() for k, v in made.items()})
            vectors.update(made)
    finally:
        cache.close()
    order = sorted(set(keys))
    stats = {"texts": len(order), "from_embeddings": sum(k in known for k in order),
             "from_cache": len(cached), "encoded": len(missing)}
    log.info("text vectors: %s", stats)
    return TextVectors(order, np.stack([vectors[k] for k in order]).astype(np.float32)), stats
