"""Labelled sentence tables: radiology sentences with their CheXpert-convention labels, written as
compact codes ("PE=0 PX=-1"), and how a labeler scores on them (overall, per pattern, per observation)."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.chexpert import OBSERVATIONS, PATHOLOGIES, POSITIVE, UNCERTAIN
from components.reports.agreement import f1_per_observation, macro_f1

# The hand-written real-language table (tests/data/labeler_real.yaml in a checkout; the tests and
# bench/labeler.py read it, the package does not ship it).
REAL_TABLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "labeler_real.yaml"
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


