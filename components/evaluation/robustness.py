"""Text robustness of any text encoder (anything with `encode(texts, batch_size=...)` -> L2-normalised rows).

On one split of the cleaned reports and their accepted variants (`valid`, text differing from the original):
- `<kind>_r_at_1` for kind in abbreviation, paraphrase, style_transfer: query = a variant of that kind,
  gallery = every original report of the split; a hit when its nearest original is its own report.
- `impression_only_r_at_1`: query = the impression section of a report that also has findings.
- 4-way error discrimination, per report with a paraphrase and >= 3 distinct error variants: anchor = its
  first paraphrase (sorted), candidates = the original + 3 error variants (a seeded sample); strict top-1
  (the original strictly most similar), tie-aware top-1, mean rank of the original (1-4), margin
  (similarity to the original minus the best error's). Chance: 0.25 and 2.5.
- per error category, every error variant of reports with an anchor, 2-way: is the original more similar
  to the anchor than the error variant (strict, tie-aware) and the mean margin.
Every rate carries n and a bootstrap 95% interval; R@1 is tie-aware (see retrieval.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from components.evaluation.retrieval import expected_ranks, hit_at_k
from components.evaluation.stats import DEFAULT_RESAMPLES, mean_ci

ERROR_CANDIDATES = 3
QUERY_KINDS = ("abbreviation", "paraphrase", "style_transfer", "impression_only")


@dataclass(frozen=True)
class RobustnessSet:
    gallery: list[str]  # the original reports of the split
    queries: dict[str, tuple[list[str], list[int]]]  # kind -> (query texts, gallery index of their report)
    # (anchor paraphrase, original, 3 error variants, their 3 categories)
    discrimination: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]
    # (anchor, original, error variant, its category): every error of every report with an anchor
    pairs: list[tuple[str, str, str, str]] = field(default_factory=list)

    def texts(self) -> list[str]:
        """Every distinct text the metrics need, in a fixed order."""
        seen = dict.fromkeys(self.gallery)
        for qs, _ in self.queries.values():
            seen.update(dict.fromkeys(qs))
        for anchor, original, errors, _ in self.discrimination:
            seen.update(dict.fromkeys((anchor, original, *errors)))
        for pair in self.pairs:
            seen.update(dict.fromkeys(pair[:3]))
        return list(seen)


def build_robustness_set(reports: list[dict], variants: list[dict], seed: int = 0) -> RobustnessSet:
    """reports: {study_id, text, findings, impression}; variants: {study_id, kind, error_category, text}
    (accepted ones of the same split)."""
    reports = [r for r in reports if r["text"] and r["text"].strip()]
    if not reports:
        raise ValueError("no report to evaluate robustness on")
    by_study: dict[str, dict[str, dict[str, str | None]]] = {}
    for v in variants:
        if v["text"]:
            by_study.setdefault(v["study_id"], {}).setdefault(v["kind"], {})[v["text"]] = v.get("error_category")
    queries: dict[str, tuple[list[str], list[int]]] = {k: ([], []) for k in QUERY_KINDS}
    discrimination, pairs = [], []
    for i, r in enumerate(reports):
        kinds = by_study.get(r["study_id"], {})
        for kind in QUERY_KINDS[:-1]:
            for t in sorted(set(kinds.get(kind, {})) - {r["text"]}):
                queries[kind][0].append(t)
                queries[kind][1].append(i)
        impression = (r.get("impression") or "").strip()
        if impression and (r.get("findings") or "").strip() and impression != r["text"]:
            queries["impression_only"][0].append(impression)
            queries["impression_only"][1].append(i)
        paraphrases = sorted(set(kinds.get("paraphrase", {})) - {r["text"]})
        errors = {t: c for t, c in kinds.get("error", {}).items() if t != r["text"]}
        if not paraphrases:
            continue
        pairs += [(paraphrases[0], r["text"], t, errors[t] or "unknown") for t in sorted(errors)]
        if len(errors) >= ERROR_CANDIDATES:
            picked = random.Random(f"{seed}:{r['study_id']}").sample(sorted(errors), ERROR_CANDIDATES)
            discrimination.append((paraphrases[0], r["text"], tuple(picked),
                                   tuple(errors[t] or "unknown" for t in picked)))
    return RobustnessSet([r["text"] for r in reports], queries, discrimination, pairs)


def load_robustness_set(clean_dir: str | Path, variants_dir: str | Path | None, split: str = "test",
                        seed: int = 0) -> RobustnessSet:
    """The split's reports (clean stage) and accepted variants (variants stage; None: text-only queries
    from the reports themselves, i.e. impression-only)."""
    cols = ["study_id", "split", "text", "findings", "impression"]
    reports = [r for r in pq.read_table(Path(clean_dir) / "reports.parquet", columns=cols).to_pylist()
               if r["split"] == split]
    if not reports:
        raise ValueError(f"no {split} report in {clean_dir}")
    variants = []
    if variants_dir is not None:
        variants = [v for v in pq.read_table(Path(variants_dir) / "variants.parquet",
                                             columns=["study_id", "split", "kind", "error_category", "text",
                                                      "valid"]).to_pylist()
                    if v["split"] == split and v["valid"]]
    return build_robustness_set(reports, variants, seed)


def score_embeddings(emb_of, rs: RobustnessSet, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """The metrics from `emb_of(list of texts) -> (n, d)` L2-normalised rows."""
    gallery = emb_of(rs.gallery)
    out: dict = {"gallery": len(rs.gallery)}
    for kind, (qs, target) in rs.queries.items():
        hits = hit_at_k(emb_of(qs) @ gallery.T, target, 1) if qs else np.zeros(0)
        out[f"{kind}_r_at_1"] = mean_ci(hits, resamples, seed)
    strict, aware, ranks, margins, by_cat = [], [], [], [], {}
    for anchor, original, errors, _ in rs.discrimination:
        sims = (emb_of([original, *errors]) @ emb_of([anchor])[0])[None, :]
        strict.append(float(sims[0, 0] > sims[0, 1:].max()))
        aware.append(float(hit_at_k(sims, [0], 1)[0]))
        ranks.append(float(expected_ranks(sims, [0])[0]))
        margins.append(float(sims[0, 0] - sims[0, 1:].max()))
    out["error_discrimination_strict"] = mean_ci(strict, resamples, seed)
    out["error_discrimination_tie_aware"] = mean_ci(aware, resamples, seed)
    out["error_discrimination_mean_rank"] = mean_ci(ranks, resamples, seed)
    out["error_discrimination_margin"] = mean_ci(margins, resamples, seed)
    for anchor, original, error, category in rs.pairs:
        a, o, e = emb_of([anchor, original, error])
        s_o, s_e = float(a @ o), float(a @ e)
        by_cat.setdefault(category, []).append((float(s_o > s_e), 1.0 if s_o > s_e else 0.5 if s_o == s_e else 0.0,
                                                s_o - s_e))
    out["by_error_category"] = {
        c: {"strict": mean_ci([x[0] for x in rows], resamples, seed)["value"],
            "tie_aware": mean_ci([x[1] for x in rows], resamples, seed),
            "margin": float(np.mean([x[2] for x in rows])), "n": len(rows)}
        for c, rows in sorted(by_cat.items())}
    return out


def evaluate_encoder(encoder, rs: RobustnessSet, batch_size: int = 32, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0) -> dict:
    """Encode every distinct text once, then score (see the module docstring)."""
    texts = rs.texts()
    emb = np.asarray(encoder.encode(texts, batch_size=batch_size), dtype=np.float64)
    index = {t: i for i, t in enumerate(texts)}
    out = score_embeddings(lambda items: emb[[index[t] for t in items]].reshape(len(items), -1), rs, resamples, seed)
    out["dim"] = int(emb.shape[1])
    return out


def chance(rs: RobustnessSet) -> dict:
    return {"r_at_1": 1 / len(rs.gallery), "error_discrimination": 1 / (1 + ERROR_CANDIDATES),
            "error_discrimination_mean_rank": (2 + ERROR_CANDIDATES) / 2, "error_pair": 0.5}


def robustness_table(encoders: dict, rs: RobustnessSet, batch_size: int = 32, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0) -> dict:
    """{gallery, chance, counts, encoders: {name: metrics}}; a value that is not an encoder (e.g. a
    {"status": "missing", ...} dict) is passed through as that encoder's row."""
    rows = {name: evaluate_encoder(enc, rs, batch_size, resamples, seed) if hasattr(enc, "encode") else enc
            for name, enc in encoders.items()}
    counts = {f"n_{k}_queries": len(q[0]) for k, q in rs.queries.items()}
    counts["n_discrimination_reports"] = len(rs.discrimination)
    counts["n_error_pairs"] = len(rs.pairs)
    return {"gallery": len(rs.gallery), "chance": chance(rs), "counts": counts, "encoders": rows}
