"""Rule labeler accuracy on real radiologists' language and on synthetic truth, and its throughput.

    python bench/labeler.py [--n 2000] [--seed 0] [--repeats 3] [--context]

Two sources of truth, reported side by side:
- `real`: the hand-written real-language table tests/data/labeler_real.yaml (MIMIC-CXR, Open-I and
  CheXpert Plus phrasing, never produced by our renderer): macro-F1 overall, per pattern and per
  observation, the entries it gets wrong, and reports/s on one core. This is the accuracy figure.
- `synthetic`: N reports of our own renderer (sample_truth + render_report with the default
  noise), labelling what a labeler reads (sections.labelable_text): agreement with the renderer,
  per observation and per style, exact-vector accuracy, worst confusions, reports/s, and macro-F1
  on the raw whole text as a robustness check.
With --context, the same table is labelled by medspacy's ConText and negspacy's NegEx
(bench/labeler_context.py) for comparison with the project's scope engine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np



from components.chexpert import OBSERVATIONS
from components.reports.agreement import f1_per_observation, macro_f1
from components.reports.label_table import real_table, score_table
from components.reports.labeler import label_report
from components.synth.corpus import synthetic_corpus


def labelable(text: str) -> str:
    """The findings + impression text when the sections parser is available, else the whole text."""
    try:
        from components.reports.sections import labelable_text, parse_sections
    except ImportError:
        return text
    return labelable_text(parse_sections(text))


def run_real(repeats: int = 3, label=None) -> dict:
    label = label or (lambda t: label_report(t).labels)
    rows = real_table()
    out = score_table(rows, [label(t) for _, t, _ in rows])
    texts = [t for _, t, _ in rows]
    out["reports_per_s_one_core"] = round(_rate(texts, repeats, label), 1)
    return out


def attribute_accuracy(truths: list, results: list) -> dict[str, float | None]:
    """Share of findings whose stated laterality / severity the labeler reports for their
    observation. Edema's "bilateral" and device sides are implicit in the text, so not counted."""
    hits = {"laterality": [], "severity": []}
    for truth, result in zip(truths, results):
        for f in truth.findings:
            if f.observation in ("Edema", "Support Devices"):
                continue
            if f.laterality:
                hits["laterality"].append(result.laterality.get(f.observation) == f.laterality)
            if f.severity:
                hits["severity"].append(result.severity.get(f.observation) == f.severity)
    return {k: round(float(np.mean(v)), 4) if v else None for k, v in hits.items()}


def _rate(texts: list[str], repeats: int, label=None) -> float:
    label = label or label_report
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for t in texts:
            label(t)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def run(n: int = 2000, seed: int = 0, repeats: int = 3) -> dict:
    corpus = synthetic_corpus(n, seed, with_truth=True)
    styles = [c[0] for c in corpus]
    truth = [c[2] for c in corpus]
    texts = [labelable(c[1]) for c in corpus]
    results = [label_report(t) for t in texts]
    pred = [r.labels for r in results]
    per_obs = f1_per_observation(truth, pred)
    per_style = {s: macro_f1([t for t, st in zip(truth, styles) if st == s],
                             [p for p, st in zip(pred, styles) if st == s]) for s in sorted(set(styles))}
    confusions = Counter((o, t[o], p[o]) for t, p in zip(truth, pred) for o in OBSERVATIONS if t[o] != p[o])
    raw_pred = [label_report(c[1]).labels for c in corpus]
    return {
        "n_reports": n, "seed": seed,
        "input": "labelable_text" if texts[0] is not corpus[0][1] else "whole_text",
        "macro_f1": round(macro_f1(truth, pred), 4),
        "per_observation_f1": {o: None if s is None else round(s, 4) for o, s in per_obs.items()},
        "per_style_macro_f1": {s: round(v, 4) for s, v in per_style.items()},
        "per_style_count": dict(Counter(styles)),
        "exact_vector_accuracy": round(sum(t == p for t, p in zip(truth, pred)) / n, 4),
        "macro_f1_whole_raw_text": round(macro_f1(truth, raw_pred), 4),
        "attribute_accuracy": attribute_accuracy([c[3] for c in corpus], results),
        "reports_per_s_one_core": round(_rate(texts, repeats), 1),
        "worst_confusions": [{"observation": o, "truth": t, "predicted": p, "count": c}
                             for (o, t, p), c in confusions.most_common(5)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--context", action="store_true", help="also score medspacy ConText and negspacy")
    args = parser.parse_args()
    out = {"real": run_real(args.repeats), "synthetic": run(args.n, args.seed, args.repeats)}
    if args.context:
        from bench.labeler_context import run_context

        out["alternatives"] = run_context(args.repeats)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
