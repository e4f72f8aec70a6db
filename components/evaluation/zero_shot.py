"""Zero-shot classification with a CLIP model: positive vs negative prompts per observation, AUROC."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from components.chexpert import NEGATIVE, OBSERVATIONS as _OBS, POSITIVE, UNCERTAIN
from components.evaluation.stats import DEFAULT_RESAMPLES, draws, percentile_ci

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
OBSERVATIONS: list[str] = list(_OBS)


@lru_cache(maxsize=None)
def load_prompts(path: str | Path = PROMPTS_FILE) -> dict[str, dict[str, list[str]]]:
    """{observation: {"positive": [...], "negative": [...]}}; every observation needs both lists non-empty."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    prompts = data.get("observations") or {}
    unknown = set(prompts) - set(OBSERVATIONS)
    if unknown:
        raise ValueError(f"{path}: unknown observations {sorted(unknown)}")
    for obs, sides in prompts.items():
        if not isinstance(sides, dict) or not sides.get("positive") or not sides.get("negative"):
            raise ValueError(f"{path}: {obs!r} needs non-empty 'positive' and 'negative' template lists")
    return prompts


def prompts_hash(path: str | Path = PROMPTS_FILE) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _class_vector(vecs: np.ndarray) -> np.ndarray:
    v = vecs.mean(0)
    return v / (np.linalg.norm(v) or 1.0)


def zero_shot_probabilities(model, image_vecs: np.ndarray, observations: list[str] | None = None,
                            prompts: dict | None = None, section: str = "full") -> dict[str, np.ndarray]:
    """P(positive) per image per observation (default: the 14 CheXpert observations).

    `model` is a CXRClip (anything with `encode_text(texts, section=...)` returning L2-normalised rows
    and `similarity(image_vecs, text_vecs)` returning logits); `image_vecs` are its L2-normalised image
    embeddings. A SigLIP bias, shared by both classes, cancels in the softmax."""
    prompts = prompts or load_prompts()
    observations = list(observations) if observations is not None else OBSERVATIONS
    unknown = [o for o in observations if o not in OBSERVATIONS]
    if unknown:
        raise ValueError(f"unknown observations {unknown}; known: {OBSERVATIONS}")
    missing = [o for o in observations if o not in prompts]
    if missing:
        raise ValueError(f"no prompts for {missing} in the prompt file")
    texts = [t for o in observations for side in ("negative", "positive") for t in prompts[o][side]]
    vecs = np.asarray(model.encode_text(texts, section=section), dtype=np.float64)
    image_vecs = np.asarray(image_vecs, dtype=np.float64)
    out, at = {}, 0
    for o in observations:
        classes = []
        for side in ("negative", "positive"):
            n = len(prompts[o][side])
            classes.append(_class_vector(vecs[at:at + n]))
            at += n
        logits = np.asarray(model.similarity(image_vecs, np.stack(classes)), np.float64)  # (images, 2)
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        out[o] = (p[:, 1] / p.sum(1)).astype(np.float32)
    return out


def auroc(scores, truth) -> float | None:
    """ROC AUC (scikit-learn); None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(truth)
    if len(np.unique(truth)) < 2:
        return None
    return float(roc_auc_score(truth, scores))


def binary_targets(labels) -> tuple[np.ndarray, np.ndarray]:
    """(mask of usable images, 0/1 truth) from 1 / 0 / -1 / NaN labels: positive = 1; negative = 0 or
    blank (not mentioned means absent, CheXpert's evaluation convention); uncertain = left out."""
    labels = np.asarray(labels, dtype=np.float64)
    usable = labels != UNCERTAIN
    return usable, (labels == POSITIVE).astype(np.int64)


def auroc_draws(scores, truth, usable, idx: np.ndarray) -> np.ndarray:
    """AUROC of each bootstrap draw (rows of `idx`, image indices), over the draw's usable images, by
    average ranks (the Mann-Whitney U, as scikit-learn computes it); NaN where a draw has one class."""
    from scipy.stats import rankdata

    ok = np.asarray(usable, bool)[idx]
    s = np.where(ok, np.asarray(scores, np.float64)[idx], np.nan)
    ranks = rankdata(s, axis=1, nan_policy="omit")
    pos = ok & (np.asarray(truth)[idx] == 1)
    n1 = pos.sum(1)
    n0 = ok.sum(1) - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (np.where(pos, ranks, 0).sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def auroc_table(probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """AUROC per observation and macro (mean over defined observations), each with a bootstrap 95% interval
    over images; the number of positives, negatives and uncertain (excluded) images per observation."""
    n = len(next(iter(probabilities.values()))) if probabilities else 0
    idx = draws(n, resamples, seed) if n and resamples else np.zeros((0, n), np.int64)
    rows, per_draw = {}, {}
    for o, p in probabilities.items():
        usable, y = binary_targets(labels[o])
        s = np.asarray(p, np.float64)
        rows[o] = {"auroc": auroc(s[usable], y[usable]), "n_positive": int(y[usable].sum()),
                   "n_negative": int(usable.sum() - y[usable].sum()), "n_uncertain_excluded": int((~usable).sum())}
        per_draw[o] = auroc_draws(s, y, usable, idx)
        rows[o]["ci"] = percentile_ci(per_draw[o]) if rows[o]["auroc"] is not None and len(idx) else None
    defined = [o for o in rows if rows[o]["auroc"] is not None]
    macro = np.mean([per_draw[o] for o in defined], axis=0) if defined and len(idx) else np.zeros(0)
    return {"per_observation": rows, "n_images": n,
            "macro_auroc": float(np.mean([rows[o]["auroc"] for o in defined])) if defined else None,
            "macro_ci": percentile_ci(macro) if defined and len(idx) else None,  # NaN draws (one class) skipped
            "observations_defined": defined, "undefined": sorted(set(rows) - set(defined))}


def roc_points(scores, truth) -> dict:
    """False and true positive rates for a ROC plot (scikit-learn's thresholds, rounded for stable files)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(truth, scores)
    return {"fpr": [round(float(x), 4) for x in fpr], "tpr": [round(float(x), 4) for x in tpr]}


__all__ = ["OBSERVATIONS", "NEGATIVE", "POSITIVE", "UNCERTAIN", "zero_shot_probabilities", "auroc_table",
           "load_prompts", "prompts_hash", "roc_points", "binary_targets", "auroc"]
