"""How well the project's labeler agrees with the reference labels a dataset ships (ingest's reference_*).

Per reference source and observation: precision, recall and F1 of the positive class (1), the way
CheXpert-style labelers are compared (a reference 0, -1 or blank is "not positive"; so is ours).
None where a ratio has a zero denominator: no invented numbers for observations a sample lacks.
"""

from __future__ import annotations

import pandas as pd

from components.chexpert import OBSERVATIONS, POSITIVE


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
