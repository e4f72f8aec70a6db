"""Cost of the evaluation's metrics at the evaluation profile's size (params/bench.yaml): ~200 test
studies, ~1,600 corpus reports, 1,000 bootstrap resamples per interval.

    python bench/evaluation.py [--studies 200] [--corpus 1600] [--resamples 1000]

Embeddings are random unit vectors with a planted signal (so metrics are neither 0 nor 1) and labels
drawn at CheXpert-like prevalences: this times the metric code, not a model. Prints one JSON document:
seconds per metric family on one process, and the figures themselves as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from components.chexpert import OBSERVATIONS
from components.evaluation import clinical, ranking, retrieval, zero_shot


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--corpus", type=int, default=1600)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n, c, d = args.studies, args.corpus, args.dim

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    text = unit(rng.normal(size=(n, d)))
    image = unit(text + rng.normal(scale=1.5, size=(n, d)) / np.sqrt(d) * 4)
    labels = np.where(rng.random((n, 14)) < 0.15, 1.0, np.where(rng.random((n, 14)) < 0.1, -1.0, np.nan))
    corpus_labels = np.where(rng.random((c, 14)) < 0.15, 1.0, np.nan)
    corpus = unit(rng.normal(size=(c, d)))
    out: dict = {"studies": n, "corpus": c, "resamples": args.resamples, "seconds": {}}

    start = time.perf_counter()
    sim = image @ text.T
    rel = np.eye(n, dtype=bool)
    r = retrieval.recall_metrics(sim, rel)
    from components.evaluation.stats import mean_ci

    cis = [mean_ci(retrieval.hit_at_k(sim, rel, k), args.resamples)["ci"] for k in (1, 5, 10)]
    pos = labels == 1.0
    hit = retrieval.label_hit_rate(sim, pos, pos)
    retrieval.precision_at_k(sim, pos, pos, OBSERVATIONS, 5)
    out["seconds"]["retrieval"] = round(time.perf_counter() - start, 3)

    start = time.perf_counter()
    import sklearn.metrics  # noqa: F401 - imported once per stage run; timed apart

    out["seconds"]["import_sklearn"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    probs = {o: 1 / (1 + np.exp(-(pos[:, j] * 1.0 + rng.normal(size=n)))) for j, o in enumerate(OBSERVATIONS)}
    zs = zero_shot.auroc_table(probs, {o: labels[:, j] for j, o in enumerate(OBSERVATIONS)}, args.resamples)
    out["seconds"]["zero_shot_auroc"] = round(time.perf_counter() - start, 3)

    start = time.perf_counter()
    f1 = clinical.retrieved_f1(image @ corpus.T, pos, corpus_labels == 1.0, resamples=args.resamples)
    out["seconds"]["clinical_f1"] = round(time.perf_counter() - start, 3)

    start = time.perf_counter()
    systems = ["a", "b", "c", "d", "e", "random"]
    ranks = {f"s{i}": {s: int(v) for s, v in zip(systems, rng.integers(1, 7, len(systems)))} for i in range(100)}
    ranking.aggregate(ranks, systems, args.resamples)
    out["seconds"]["ranking_aggregates_100_studies"] = round(time.perf_counter() - start, 3)

    out["figures"] = {"r_at_1": round(r["r_at_1"], 3), "r_at_10": round(r["r_at_10"], 3),
                      "chance_r_at_10": r["chance_r_at_10"], "r_ci": cis, "label_hit": round(hit["label_hit_at_1"], 3),
                      "macro_auroc": round(zs["macro_auroc"], 3), "macro_auroc_ci": zs["macro_ci"],
                      "clinical_micro_f1": round(f1["all"]["micro_f1"], 3)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
