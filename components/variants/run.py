"""`cxr variants`: clean reports -> equivalent rewrites and single-error rewrites, each validated.

For every clean report, one request per configured kind and per error category goes to the
backend (rules, hf or openai) through the cache; each variant is re-labelled and gated
(gate.py). Model backends get new attempts, with new seeds, for rejected variants. Outputs:
    variants.parquet  one row per request: the variant, its backend/model/prompt, valid, reject_reason
    summary.json      requested / applicable / accepted per kind and category, reject reasons, timings
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from components.chexpert import OBSERVATIONS
from components.io import atomic_dir, check_output, stable, write_json, write_table
from components.params import VariantsParams
from components.variants.base import ERROR_KIND, Backend, Variant, VariantRequest
from components.variants.cache import VariantCache, cache_key

NOT_APPLICABLE = "not_applicable"
SCHEMA = pa.schema([
    ("variant_id", pa.string()), ("study_id", pa.string()), ("split", pa.string()), ("kind", pa.string()),
    ("error_category", pa.string()), ("text", pa.string()), ("backend", pa.string()), ("model", pa.string()),
    ("prompt_version", pa.string()), ("seed", pa.int64()), ("attempts", pa.int32()), ("valid", pa.bool_()),
    ("reject_reason", pa.string()), ("detail", pa.string()), ("changed_start", pa.int32()),
    ("changed_end", pa.int32()), *[(o, pa.float32()) for o in OBSERVATIONS],
])


def make_backend(cfg: VariantsParams) -> Backend:
    if cfg.backend == "rules":
        from components.variants.rules_backend import RulesBackend

        return RulesBackend()
    if cfg.backend == "hf":
        from components.variants.hf import HFBackend

        return HFBackend(cfg.hf.model_path, prompt_version=cfg.prompt_version, batch_size=cfg.hf.batch_size,
                         max_new_tokens=cfg.hf.max_new_tokens, temperature=cfg.hf.temperature)
    from components.variants.openai_backend import OpenAIBackend

    o = cfg.openai
    return OpenAIBackend(o.base_url, o.model, api_key=os.environ.get(o.api_key_env), prompt_version=cfg.prompt_version,
                         concurrency=o.concurrency, timeout_s=o.timeout_s, max_attempts=o.max_attempts,
                         backoff_s=o.backoff_s, temperature=o.temperature, max_tokens=o.max_tokens)


def _label(text: str):
    from components.reports.labeler import label_report
    from components.reports.sections import labelable_text, parse_sections

    return label_report(labelable_text(parse_sections(text)))


def _verdict(request: VariantRequest, variant: Variant, source) -> tuple[str | None, object]:
    """(reject reason or None, the variant's LabelResult)."""
    from components.variants.devices import device_mentions
    from components.variants.gate import check_equivalent, check_error

    if variant.text is None:
        return variant.failure or "no_text", None
    if not variant.text.strip():
        return "empty_text", None
    if variant.text.strip() == request.text.strip():
        return "unchanged", None
    result = _label(variant.text)
    if request.kind == ERROR_KIND:
        reason = check_error(request.error_category, source, result, request.text, variant.text, device_mentions)
    else:
        reason = check_equivalent(request.kind, source, result)
    return reason, result


class _Generator:
    """Backend calls through the cache, in batches that are committed as they finish."""

    def __init__(self, backend: Backend, cache: VariantCache, batch_size: int, progress: bool):
        self.backend, self.cache, self.batch_size, self.progress = backend, cache, batch_size, progress
        self.generated = self.cached = 0

    def __call__(self, requests: list[VariantRequest]) -> list[Variant]:
        b = self.backend
        keys = [cache_key(r, b.name, b.model, b.prompt_version) for r in requests]
        found = self.cache.get_many(keys)
        self.cached += len(found)
        todo = [(k, r) for k, r in zip(keys, requests) if k not in found]
        bar = tqdm(total=len(todo), desc=f"variants ({b.name})", unit="variant", disable=not self.progress)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            made = dict(zip((k for k, _ in batch), b.generate([r for _, r in batch])))
            self.cache.put_many(made)
            found.update(made)
            self.generated += len(batch)
            bar.update(len(batch))
        bar.close()
        return [found[k] for k in keys]


def run_variants(cfg: VariantsParams, backend: Backend | None = None, progress: bool = True) -> dict:
    start = time.perf_counter()
    check_output(cfg.out, [cfg.input])
    source = Path(cfg.input) / "reports.parquet"
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: run `cxr clean` first (variants.input={cfg.input})")
    reports = pd.read_parquet(source, columns=["study_id", "split", "text"])
    backend = backend or make_backend(cfg)
    sources = {r.study_id: (r.text, _label(r.text), r.split) for r in reports.itertuples()}
    base = [VariantRequest(s, text, kind, None, cfg.seed) for s, (text, _, _) in sources.items()
            for kind in cfg.kinds]
    base += [VariantRequest(s, text, ERROR_KIND, cat, cfg.seed) for s, (text, _, _) in sources.items()
             for cat in cfg.error_categories]
    attempts = 1 + (cfg.max_retries if backend.name != "rules" else 0)  # rules are deterministic
    outcome: dict[int, tuple] = {}
    cache = VariantCache(cfg.cache)
    try:
        generate = _Generator(backend, cache, cfg.batch_size, progress)
        pending = list(range(len(base)))
        for attempt in range(attempts):
            requests = [replace(base[i], seed=cfg.seed + attempt * 1_000_003) for i in pending]
            retry = []
            for i, request, variant in zip(pending, requests, generate(requests)):
                reason, result = _verdict(request, variant, sources[request.study_id][1])
                outcome[i] = (request, variant, reason, result, attempt + 1)
                if reason and variant.failure != NOT_APPLICABLE:
                    retry.append(i)
            pending = retry
    finally:
        cache.close()

    rows = [_row(*outcome[i], backend, sources[base[i].study_id][2]) for i in range(len(base))]
    with atomic_dir(cfg.out, [cfg.input]) as tmp:
        write_table(tmp / "variants.parquet", rows, SCHEMA)
        summary = _summary(rows, generate, time.perf_counter() - start)
        write_json(tmp / "summary.json", stable(summary))
    write_json(cfg.metrics, {"variants": summary["variants"], "accepted": summary["accepted"],
                             "kinds_below_half": sum(1 for v in summary["by_kind"].values()
                                                     if v["acceptance"] is not None and v["acceptance"] < 0.5)})
    return summary


def _row(request: VariantRequest, variant: Variant, reason, result, attempts: int, backend: Backend,
         split: str) -> dict:
    key = "/".join([request.study_id, request.kind, request.error_category or "", backend.name, backend.model,
                    backend.prompt_version, str(request.seed)])
    span = variant.changed_span or (None, None)
    labels = result.labels if result is not None else {}
    return {
        "variant_id": hashlib.sha1(key.encode()).hexdigest()[:16], "study_id": request.study_id,
        "split": split, "kind": request.kind, "error_category": request.error_category, "text": variant.text,
        "backend": backend.name, "model": backend.model, "prompt_version": backend.prompt_version,
        "seed": request.seed, "attempts": attempts, "valid": reason is None, "reject_reason": reason,
        "detail": variant.detail, "changed_start": span[0], "changed_end": span[1],
        **{o: labels.get(o) for o in OBSERVATIONS},
    }


def _summary(rows: list[dict], generate: _Generator, seconds: float) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["error_category"] and f"error:{r['error_category']}" or r["kind"]].append(r)
    by_kind = {}
    for name, members in sorted(groups.items()):
        applicable = [r for r in members if r["reject_reason"] != NOT_APPLICABLE]
        accepted = sum(r["valid"] for r in applicable)
        by_kind[name] = {"requested": len(members), "applicable": len(applicable), "accepted": accepted,
                         "acceptance": round(accepted / len(applicable), 4) if applicable else None}
    reasons = Counter(r["reject_reason"].split(":")[0].split("=")[0] for r in rows if r["reject_reason"])
    return {
        "variants": len(rows), "accepted": sum(r["valid"] for r in rows), "by_kind": by_kind,
        "reject_reasons": dict(sorted(reasons.items())), "backend": rows[0]["backend"] if rows else None,
        "model": rows[0]["model"] if rows else None, "generated": generate.generated,
        "from_cache": generate.cached, "seconds": round(seconds, 3),
        "variants_per_second": round(len(rows) / max(seconds, 1e-9), 1),
    }
