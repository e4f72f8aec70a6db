"""The embed stage: every clean report and every accepted variant, encoded once per encoder content
hash (a SQLite cache per encoder), written as float32 matrices the CLIP stage reads."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from components.io import atomic_dir, stable, write_json
from components.kvcache import SqliteCache


def _encode_cached(encoder, texts: list[str], cache: SqliteCache, batch_size: int) -> tuple[np.ndarray, int]:
    """Embeddings of `texts`, encoding only those the cache lacks; returns (matrix, how many encoded)."""
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    found = cache.get_many(keys)
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in found}.items())
    if missing:
        vectors = encoder.encode([t for _, t in missing], batch_size=batch_size)
        made = {k: v.astype(np.float32).tobytes() for (k, _), v in zip(missing, vectors)}
        cache.put_many(made)
        found.update(made)
    return np.stack([np.frombuffer(found[k], dtype=np.float32) for k in keys]) if keys else np.zeros((0, 0)), len(missing)


def embed(p) -> dict:
    """`p`: the embed params section (components.params.EmbedParams)."""
    from components.encoder.text_encoder import TextEncoder

    start = time.perf_counter()
    if not Path(p.encoder).exists():
        raise FileNotFoundError(f"{p.encoder} not found: run `cxr encoder` first")
    encoder = TextEncoder.load(p.encoder)
    encoder_hash = encoder.content_hash()
    reports = pd.read_parquet(Path(p.clean) / "reports.parquet", columns=["study_id", "split", "text"])
    variants = pd.read_parquet(Path(p.variants) / "variants.parquet",
                               columns=["variant_id", "study_id", "split", "kind", "error_category", "text", "valid"])
    variants = variants[variants["valid"]].drop(columns="valid").reset_index(drop=True)
    cache = SqliteCache(Path(p.cache) / f"{encoder_hash}.sqlite")
    try:
        report_vecs, n_reports = _encode_cached(encoder, list(reports["text"]), cache, p.batch_size)
        variant_vecs, n_variants = _encode_cached(encoder, list(variants["text"]), cache, p.batch_size)
    finally:
        cache.close()
    summary = {
        "encoder": str(p.encoder), "encoder_hash": encoder_hash, "dim": int(report_vecs.shape[1]),
        "instruction": encoder.config.instruction, "reports": len(reports), "variants": len(variants),
        "encoded": n_reports + n_variants, "from_cache": len(reports) + len(variants) - n_reports - n_variants,
        "seconds": round(time.perf_counter() - start, 2),
    }
    with atomic_dir(p.out) as tmp:
        np.save(tmp / "reports.npy", report_vecs)
        np.save(tmp / "variants.npy", variant_vecs)
        reports.drop(columns="text").to_parquet(tmp / "reports.parquet", index=False)
        variants.drop(columns="text").to_parquet(tmp / "variants.parquet", index=False)
        write_json(tmp / "meta.json", stable(summary))
    write_json(p.metrics, {k: summary[k] for k in ("dim", "reports", "variants")})
    return summary
