"""Rule labeler accuracy against synthetic truth, and its single-core throughput.

    python bench/labeler.py [--n 2000] [--seed 0] [--repeats 3]

Renders N synthetic reports in memory (sample_truth + render_report with the default noise),
labels what a labeler reads (components.reports.sections.labelable_text when importable, else
the whole report) and prints one JSON document: macro-F1 (definition in `macro_f1`), per
observation and per report style, exact-vector accuracy, the worst confusions, reports/s on one
core (best of `repeats` passes), and macro-F1 on the raw whole text as a robustness check.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from components.chexpert import LABEL_VALUES, OBSERVATIONS
from components.params import SynthParams
from components.reports.labeler import label_report
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth


def labelable(text: str) -> str:
    """The findings + impression text when the sections parser is available, else the whole text."""
    try:
        from components.reports.sections import labelable_text, parse_sections
    except ImportError:
        return text
    return labelable_text(parse_sections(text))


def f1_per_observation(truth: list[dict], pred: list[dict]) -> dict[str, float | None]:
    """Per observation: F1 of each label value c in {1, 0, -1} (one-vs-rest over reports; blank is
    "no label", never a class, so predicting c where truth is blank costs precision and a blank
    where truth is c costs recall), averaged over the values present in truth or prediction.
    None where neither side has any value for the observation."""
    out: dict[str, float | None] = {}
    for obs in OBSERVATIONS:
        t = [row[obs] for row in truth]
        p = [row[obs] for row in pred]
        scores = []
        for c in LABEL_VALUES:
            tp = sum(a == c and b == c for a, b in zip(t, p))
            n_true, n_pred = t.count(c), p.count(c)
            if n_true or n_pred:
                scores.append(2 * tp / (n_true + n_pred))  # F1 = 2TP / (|truth=c| + |pred=c|)
        out[obs] = float(np.mean(scores)) if scores else None
    return out


def macro_f1(truth: list[dict], pred: list[dict]) -> float:
    """Mean over observations of `f1_per_observation` (observations with no value skipped)."""
    scores = [s for s in f1_per_observation(truth, pred).values() if s is not None]
    return float(np.mean(scores)) if scores else float("nan")


def synthetic_corpus(n: int, seed: int, with_truth: bool = False) -> list[tuple]:
    """(style, report text, truth labels[, StudyTruth]) for n synthetic studies, as `cxr synth`
    renders them."""
    cfg = SynthParams(seed=seed)
    out = []
    for i in range(n):
        truth = sample_truth(i, 10_000_000 + i, seed, cfg)
        text = render_report(truth, np.random.default_rng([seed, i, 1]), cfg.noise)
        out.append((truth.style, text, truth.labels()) + ((truth,) if with_truth else ()))
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


def _rate(texts: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for t in texts:
            label_report(t)
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
    args = parser.parse_args()
    print(json.dumps(run(args.n, args.seed, args.repeats), indent=2))


if __name__ == "__main__":
    main()
