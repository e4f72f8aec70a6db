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

from pathlib import Path

import yaml

from components.chexpert import LABEL_VALUES, OBSERVATIONS, PATHOLOGIES, POSITIVE, UNCERTAIN
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


REAL_TABLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "labeler_real.yaml"
CODES = {"EC": "Enlarged Cardiomediastinum", "CM": "Cardiomegaly", "LO": "Lung Opacity", "LL": "Lung Lesion",
         "ED": "Edema", "CO": "Consolidation", "PN": "Pneumonia", "AT": "Atelectasis", "PX": "Pneumothorax",
         "PE": "Pleural Effusion", "PO": "Pleural Other", "FX": "Fracture", "SD": "Support Devices"}


def parse_labels(spec: str) -> dict[str, float | None]:
    """"PE=0 PX=-1" -> all 14 observations; unnamed ones blank, No Finding derived as CheXpert does."""
    labels: dict[str, float | None] = {o: None for o in OBSERVATIONS}
    for item in spec.split():
        code, value = item.split("=")
        labels[CODES[code]] = float(value)
    if not any(labels[o] in (POSITIVE, UNCERTAIN) for o in PATHOLOGIES):
        labels["No Finding"] = POSITIVE
    return labels


def real_table(path: Path = REAL_TABLE) -> list[tuple[str, str, dict]]:
    """(pattern, text, labels) for every entry of the real-language table."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(pattern, text, parse_labels(spec)) for pattern, rows in data.items() for text, spec in rows]


def score_table(rows: list[tuple[str, str, dict]], preds: list[dict]) -> dict:
    """Macro-F1 overall, per pattern and per observation, and the entries with any wrong label."""
    truth = [r[2] for r in rows]
    patterns = list(dict.fromkeys(r[0] for r in rows))
    per_obs = f1_per_observation(truth, preds)
    wrong = [{"pattern": p, "text": t, "wrong": {o: [y[o], x[o]] for o in OBSERVATIONS if y[o] != x[o]}}
             for (p, t, y), x in zip(rows, preds) if y != x]
    return {
        "n": len(rows),
        "macro_f1": round(macro_f1(truth, preds), 4),
        "exact_accuracy": round(1 - len(wrong) / len(rows), 4),
        "per_pattern_macro_f1": {p: round(macro_f1([y for (q, _, y) in rows if q == p],
                                                   [x for (q, _, _), x in zip(rows, preds) if q == p]), 4)
                                 for p in patterns},
        "per_pattern_count": {p: sum(r[0] == p for r in rows) for p in patterns},
        "per_observation_f1": {o: None if v is None else round(v, 4) for o, v in per_obs.items()},
        "wrong": wrong,
    }


def run_real(repeats: int = 3, label=None) -> dict:
    label = label or (lambda t: label_report(t).labels)
    rows = real_table()
    out = score_table(rows, [label(t) for _, t, _ in rows])
    texts = [t for _, t, _ in rows]
    out["reports_per_s_one_core"] = round(_rate(texts, repeats, label), 1)
    return out


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
