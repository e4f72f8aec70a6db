"""The library half of the package stage: the retrieval index and the model card, written atomically
to `package.out` (a DVC output). The BentoML half (model store, Bento) is serving/bento.py."""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

from components.io import atomic_dir, write_json

INDEX_DIR = "index"
CARD = "model_card.json"
EVAL_METRICS = "metrics.json"  # inside the evaluate stage's output folder


def build_package(p, params_record: dict, device: str | None = None) -> dict:
    """Write `p.out`/index and `p.out`/model_card.json from the encoder, CLIP and clean-report dirs
    `p` names (PackageParams). `params_record`: the params the stage reads, recorded in the card."""
    from components.clip.model import CXRClip
    from components.encoder.text_encoder import TextEncoder
    from components.packaging.index import build_index, reference_reports
    from components.packaging.lineage import model_card

    for path, stage in ((p.encoder, "encoder"), (p.clip, "clip"), (p.clean, "clean")):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} not found: run `cxr {stage}` first")
    start = time.perf_counter()
    reports, counts = reference_reports(p.clean, list(p.index_splits))
    if reports.empty:
        raise ValueError(f"no PHI-free reports in splits {list(p.index_splits)} of {p.clean}: nothing to index")
    text_encoder = TextEncoder.load(p.encoder, device=device)
    clip = CXRClip.load(p.clip, device=device)
    versions = {"text_encoder": {"content_hash": text_encoder.content_hash(),
                                 "dim": int(text_encoder.backbone.config.hidden_size),
                                 "instruction": text_encoder.config.instruction},
                "clip": asdict(clip.config) if is_dataclass(clip.config) else dict(clip.config)}
    metrics_file = Path(p.evaluation) / EVAL_METRICS
    with atomic_dir(p.out) as tmp:
        shape = build_index(reports, text_encoder, clip, tmp / INDEX_DIR, batch_size=p.batch_size)
        card = model_card({"text_encoder": p.encoder, "clip": p.clip, "clean_reports": p.clean},
                          params_record, versions, metrics_file, {**counts, **shape})
        write_json(tmp / CARD, card)
    summary = {"version": card["version"], "git_commit": card["git"]["commit"], **counts, **shape,
               "evaluation": card["evaluation"] is not None, "seconds": round(time.perf_counter() - start, 2)}
    write_json(p.metrics, {k: summary[k] for k in ("indexed", "excluded_phi", "reports_in")})
    return summary
