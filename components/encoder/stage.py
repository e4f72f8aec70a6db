"""`cxr encoder train` and `cxr encoder embed`: the LLM2VEC4CXR recipe end to end, then the
embedding cache the CLIP stage reads.

train: (pretrain the demo LM, unless encoder.base_model names a checkpoint) -> MNTP with LoRA ->
supervised contrastive with LoRA; each step resumes from its own checkpoints when re-run after a kill.
embed: every clean report and every accepted variant, encoded once per encoder content hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from components.io import atomic_dir, write_json
from components.kvcache import SqliteCache
from components.params import EmbedParams, EncoderParams


def _configs(p: EncoderParams):
    from components.encoder.contrastive import ContrastiveConfig
    from components.encoder.mntp import MNTPConfig
    from components.encoder.pretrain import PretrainConfig

    try:
        return (PretrainConfig.from_dict(p.pretrain), MNTPConfig.from_dict(p.mntp),
                ContrastiveConfig.from_dict(p.contrastive))
    except TypeError as e:  # an unknown key in params.yaml's encoder section
        raise ValueError(f"invalid encoder params: {e}") from None


def _curve(run_dir: Path, phase: str) -> list[dict]:
    """(step, loss) rows of a training step's metrics.jsonl, for DVC plots and the summary."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [{"phase": phase, "step": r["step"], "loss": round(r["loss"], 5)} for r in rows if "loss" in r]


def train_encoder(p: EncoderParams) -> dict:
    from components.encoder.contrastive import run_contrastive
    from components.encoder.mntp import run_mntp
    from components.encoder.pretrain import run_pretrain

    pretrain, mntp, contrastive = _configs(p)
    for stage_dir, stage in ((p.clean, "clean"), (p.variants, "variants")):
        if not Path(stage_dir).exists():
            raise FileNotFoundError(f"{stage_dir} not found: run `cxr {stage}` first")
    start = time.perf_counter()
    steps = Path(p.steps_dir)
    base = Path(p.base_model) if p.base_model else run_pretrain(pretrain, p.clean, steps / "pretrained")
    adapted = run_mntp(mntp, p.clean, base, steps / "mntp")
    evaluation = run_contrastive(contrastive, p.clean, p.variants, adapted, p.out)
    curves = {phase: _curve(d, phase) for phase, d in (("pretrain", steps / "pretrained"), ("mntp", steps / "mntp"),
                                                        ("contrastive", Path(p.out))) if phase != "pretrain" or not p.base_model}
    summary = {
        "base_model": str(base), "pretrained_here": not p.base_model,
        "final_loss": {phase: rows[-1]["loss"] if rows else None for phase, rows in curves.items()},
        "evaluation": evaluation, "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(p.metrics, summary)
    write_json(p.loss_plot, [row for rows in curves.values() for row in rows])
    return summary


def train_baseline(p: EncoderParams) -> dict:
    """The fair comparison of recipes: a BERT of the demo LLM's size and data budget, MLM-pretrained
    (pretrain + MNTP steps) then trained with the same contrastive step and triples."""
    from components.encoder.baselines import BertBaselineConfig, run_bert_baseline

    pretrain, mntp, contrastive = _configs(p)
    if not Path(p.variants).exists():
        raise FileNotFoundError(f"{p.variants} not found: run `cxr variants` first")
    start = time.perf_counter()
    cfg = BertBaselineConfig.matching(pretrain, mntp, contrastive)
    cfg = replace(cfg, loop=replace(cfg.loop, lr=p.baseline_mlm_lr))
    result = run_bert_baseline(cfg, p.clean, p.variants, p.baseline)
    summary = {"encoder": p.baseline, "mlm_steps": result["mlm"].get("steps"), "mlm_lr": p.baseline_mlm_lr,
               "mlm_final_loss": result["mlm"].get("final_loss"),
               "evaluation": result["contrastive"], "seconds": round(time.perf_counter() - start, 1)}
    write_json(p.baseline_metrics, summary)
    return summary


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


def embed(p: EmbedParams) -> dict:
    from components.encoder.text_encoder import TextEncoder

    start = time.perf_counter()
    if not Path(p.encoder).exists():
        raise FileNotFoundError(f"{p.encoder} not found: run `cxr encoder train` first")
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
        write_json(tmp / "meta.json", summary)
    write_json(p.metrics, {k: summary[k] for k in ("dim", "reports", "variants", "encoded", "from_cache")})
    return summary
