"""Report robustness of text encoders side by side, on one split of the synthetic data (default: test).

    python bench/robustness.py [--clean data/clean] [--variants data/variants] [--encoder data/encoder]
                               [--bert data/baselines/bert] [--extra DIR ...] [--split test] [--batch-size 32]
                               [--no-minilm]

A thin caller of components/evaluation/robustness.py (the `cxr evaluate` stage computes the same
table; the metrics are defined in that module's docstring). This adds the encoders' throughput:
texts_per_s = every distinct text of the split's benchmark encoded once (after a warm-up batch), wall
clock, `--batch-size`, on the current device. A missing encoder directory is reported as "missing"
with the command that builds it. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from components.evaluation.robustness import load_robustness_set, robustness_table

BUILD = {
    "llm2vec4cxr": "cxr encoder  (or: dvc repro encoder)",
    "bert_baseline": "cxr baselines  (or: dvc repro baselines)",
}


def load_encoders(encoder_dir: str | Path | None, bert_dir: str | Path | None, minilm: bool = True,
                  extra: list[str] | tuple[str, ...] = ()) -> dict:
    """TextEncoders by name; a missing directory becomes {"status": "missing", "path", "build"}."""
    from components.encoder.text_encoder import TextEncoder

    encoders: dict = {}
    named = [("llm2vec4cxr", encoder_dir), ("bert_baseline", bert_dir)] + [(Path(p).name, p) for p in extra]
    for name, path in named:
        if path is None:
            continue
        if (Path(path) / "config.json").exists():
            encoders[name] = TextEncoder.load(path)
        else:
            encoders[name] = {"status": "missing", "path": str(path),
                              "build": BUILD.get(name, "a TextEncoder directory (config.json + weights)")}
    if minilm:
        from components.encoder.baselines import load_minilm

        encoders["minilm"] = load_minilm()
    return encoders


def throughput(encoder, texts: list[str], batch_size: int) -> float:
    encoder.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: lazy init, allocator, threads
    start = time.perf_counter()
    encoder.encode(texts, batch_size=batch_size)
    return round(len(texts) / (time.perf_counter() - start), 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", default="data/clean")
    parser.add_argument("--variants", default="data/variants")
    parser.add_argument("--encoder", default="data/encoder", help="LLM2VEC4CXR encoder directory")
    parser.add_argument("--bert", default="data/baselines/bert", help="BERT baseline encoder directory")
    parser.add_argument("--extra", nargs="*", default=[], help="more TextEncoder directories")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-minilm", action="store_true")
    args = parser.parse_args(argv)
    encoders = load_encoders(args.encoder, args.bert, not args.no_minilm, args.extra)
    rs = load_robustness_set(args.clean, args.variants, args.split, args.seed)
    table = robustness_table(encoders, rs, args.batch_size, seed=args.seed)
    texts = rs.texts()
    for name, enc in encoders.items():
        if hasattr(enc, "encode"):
            table["encoders"][name]["texts_per_s"] = throughput(enc, texts, args.batch_size)
            table["encoders"][name]["n_texts_timed"] = len(texts)
    print(json.dumps(table, indent=2))
    return table


if __name__ == "__main__":
    main()
