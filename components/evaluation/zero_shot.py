"""Zero-shot classification with a CLIP model: positive vs negative prompts per observation, AUROC."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from components.chexpert import NEGATIVE, OBSERVATIONS as _OBS, POSITIVE, UNCERTAIN
from components.evaluation.stats import DEFAULT_RESAMPLES, bootstrap_ci

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


def auroc_table(probabilities: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """AUROC per observation and macro (mean over defined observations), each with a bootstrap 95% interval
    over images; the number of positives, negatives and uncertain (excluded) images per observation."""
    rows, per_obs = {}, {}
    for o, p in probabilities.items():
        usable, y = binary_targets(labels[o])
        per_obs[o] = (np.asarray(p, np.float64), y, usable)
        s, y = per_obs[o][0][usable], y[usable]
        rows[o] = {"auroc": auroc(s, y), "n_positive": int(y.sum()), "n_negative": int(len(y) - y.sum()),
                   "n_uncertain_excluded": int((~usable).sum())}
        rows[o]["ci"] = bootstrap_ci(lambda i, s=s, y=y: auroc(s[i], y[i]), len(y), resamples, seed) \
            if rows[o]["auroc"] is not None else None
    defined = [o for o in rows if rows[o]["auroc"] is not None]
    n = len(next(iter(probabilities.values()))) if probabilities else 0

    def macro(idx: np.ndarray) -> float | None:
        values = []
        for o in defined:
            s, y, usable = per_obs[o]
            sel = idx[usable[idx]]
            v = auroc(s[sel], y[sel])
            if v is None:
                return None
            values.append(v)
        return float(np.mean(values)) if values else None

    macro_value = float(np.mean([rows[o]["auroc"] for o in defined])) if defined else None
    return {"per_observation": rows, "macro_auroc": macro_value, "n_images": n,
            "macro_ci": bootstrap_ci(macro, n, resamples, seed) if defined else None,
            "observations_defined": defined,
            "undefined": sorted(set(rows) - set(defined))}


def roc_points(scores, truth) -> dict:
    """False and true positive rates for a ROC plot (scikit-learn's thresholds, rounded for stable files)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(truth, scores)
    return {"fpr": [round(float(x), 4) for x in fpr], "tpr": [round(float(x), 4) for x in tpr]}


__all__ = ["OBSERVATIONS", "NEGATIVE", "POSITIVE", "UNCERTAIN", "zero_shot_probabilities", "auroc_table",
           "load_prompts", "prompts_hash", "roc_points", "binary_targets", "auroc"]
