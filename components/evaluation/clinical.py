"""Clinical alignment: labeler F1 between the top-1 retrieved report and the ground-truth report."""

from __future__ import annotations

import numpy as np

from components.chexpert import OBSERVATIONS
from components.evaluation.retrieval import topk_weights
from components.evaluation.stats import DEFAULT_RESAMPLES, bootstrap_ci

# CheXpert's competition tasks (Irvin et al., 2019), the usual 5-observation subset.
COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


def f1_counts(predicted, truth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per observation (expected) TP, FP, FN from predicted positives in [0, 1] (tie-aware weights)
    and 0/1 truth, both (n, observations)."""
    p, t = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    return (p * t).sum(0), (p * (1 - t)).sum(0), ((1 - p) * t).sum(0)


def f1_from_counts(tp, fp, fn, observations) -> dict:
    """Micro F1 over all (report, observation) pairs; macro F1 = mean over observations whose F1 is
    defined (some positive in truth or prediction); the others are listed, not counted as 0 or 1."""
    tp, fp, fn = (np.asarray(x, np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    per = {o: (float(2 * tp[j] / denom[j]) if denom[j] > 0 else None) for j, o in enumerate(observations)}
    defined = [v for v in per.values() if v is not None]
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    return {"micro_f1": float(2 * tp.sum() / total) if total > 0 else None,
            "macro_f1": float(np.mean(defined)) if defined else None,
            "per_observation": per, "undefined": [o for o, v in per.items() if v is None]}


def retrieved_f1(sim, truth_pos, gallery_pos, observations=OBSERVATIONS, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> dict:
    """F1 of the top-1 retrieved report's positive labels against each query's ground-truth positives,
    over the given observations and over the 5 competition ones, with bootstrap intervals over queries.

    sim: (queries, gallery reports); truth_pos: (queries, 14) bool; gallery_pos: (gallery, 14) bool, both in
    OBSERVATIONS order. A tie at the top shares the prediction between the tied reports."""
    truth_pos, gallery_pos = np.asarray(truth_pos, bool), np.asarray(gallery_pos, bool)
    predicted = topk_weights(sim, 1) @ gallery_pos.astype(np.float64)  # (queries, 14) expected positives
    out = {"n_queries": int(truth_pos.shape[0])}
    for name, subset in (("all", list(observations)), ("competition", list(COMPETITION))):
        cols = [list(OBSERVATIONS).index(o) for o in subset]
        p, t = predicted[:, cols], truth_pos[:, cols]
        scores = f1_from_counts(*f1_counts(p, t), subset)
        for avg in ("micro_f1", "macro_f1"):
            def stat(i, avg=avg, p=p, t=t, subset=subset):
                return f1_from_counts(*f1_counts(p[i], t[i]), subset)[avg]
            scores[f"{avg}_ci"] = bootstrap_ci(stat, len(t), resamples, seed) if scores[avg] is not None else None
        out[name] = scores
    return out
