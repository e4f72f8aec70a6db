"""How well the project's labeler agrees with other labels: the reference labels a dataset ships
(ingest's reference_*), and any truth table (label-value F1, used by the labeler benchmarks and tests).

Per reference source and observation: precision, recall and F1 of the positive class (1), the way
CheXpert-style labelers are compared (a reference 0, -1 or blank is "not positive"; so is ours).
None where a ratio has a zero denominator: no invented numbers for observations a sample lacks.
"""

from __future__ import annotations

import pandas as pd

import numpy as np

from components.chexpert import LABEL_VALUES, OBSERVATIONS, POSITIVE


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def positive_agreement(ours: pd.Series, reference: pd.Series) -> dict:
    pred, true = ours.eq(POSITIVE), reference.eq(POSITIVE)
    tp, fp, fn = int((pred & true).sum()), int((pred & ~true).sum()), int((~pred & true).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(true.sum()),
            "predicted": int(pred.sum())}


def reference_agreement(table: pd.DataFrame) -> dict:
    """{source: {"studies": n, "macro_f1": x, "observations": {obs: {precision, recall, f1, ...}}}}."""
    if "reference_source" not in table or table["reference_source"].isna().all():
        return {}
    out = {}
    for source, group in table.dropna(subset=["reference_source"]).groupby("reference_source", sort=True):
        per = {o: positive_agreement(group[o], group[f"reference_{o}"]) for o in OBSERVATIONS}
        f1s = [v["f1"] for v in per.values() if v["f1"] is not None]
        out[str(source)] = {"studies": int(len(group)),
                            "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else None,
                            "observations": per}
    return out


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
