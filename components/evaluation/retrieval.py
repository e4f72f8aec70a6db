"""Retrieval metrics on similarity matrices (queries x gallery), tie-aware.

Ties are resolved as a uniformly random tie-break would on average: a query whose true item ties
with t others at g strictly better items has expected rank g + 1 + t/2 and is in the top k with
probability clip((k - g) / (t + 1), 0, 1). So a constant scorer gets exactly the chance level
(R@k = k/n) instead of a perfect score, and no figure depends on the order of the gallery.
"""

from __future__ import annotations

import numpy as np


def _check(sim: np.ndarray, relevant) -> tuple[np.ndarray, np.ndarray]:
    """(sim, relevant as a boolean (queries, gallery) mask); `relevant` is one gallery index per query
    or such a mask (several correct items: e.g. word-for-word identical templated reports)."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[1] == 0:
        raise ValueError(f"similarity must be a (queries, gallery) matrix with a gallery, got shape {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("similarity contains NaN or infinity")
    relevant = np.asarray(relevant)
    if relevant.dtype == bool:
        if relevant.shape != sim.shape:
            raise ValueError(f"relevance mask {relevant.shape} does not match similarity {sim.shape}")
        if not relevant.any(1).all():
            raise ValueError("a query has no relevant gallery item")
        return sim, relevant
    target = relevant.astype(np.int64)
    if target.shape != (sim.shape[0],):
        raise ValueError(f"need one target per query: {target.shape} targets for {sim.shape[0]} queries")
    if len(target) and (target.min() < 0 or target.max() >= sim.shape[1]):
        raise ValueError("a target index is outside the gallery")
    mask = np.zeros(sim.shape, bool)
    mask[np.arange(len(target)), target] = True
    return sim, mask


def rank_counts(sim, relevant) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(better, tied, tied_relevant) per query: with b the best score of a relevant item, the items scored
    strictly above b (all irrelevant), the irrelevant items scored b, and the relevant items scored b."""
    sim, mask = _check(sim, relevant)
    best = np.where(mask, sim, -np.inf).max(1, keepdims=True)
    better = (sim > best).sum(1)
    at = sim == best
    return better, (at & ~mask).sum(1), (at & mask).sum(1)


def expected_ranks(sim, relevant) -> np.ndarray:
    """1-based rank of each query's first relevant item, averaged over random tie-breaks: u irrelevant
    items tied with r relevant ones put u / (r + 1) of them in front on average."""
    better, tied, tied_rel = rank_counts(sim, relevant)
    return better + 1 + tied / (tied_rel + 1)


def hit_at_k(sim, relevant, k: int) -> np.ndarray:
    """Per query, the probability that a relevant item is among the top k (random tie-break):
    1 - P(at least m = k - better of the tied irrelevant items precede every tied relevant one),
    P(>= m) = prod_{i<m} (u - i) / (u + r - i)."""
    better, u, r = rank_counts(sim, relevant)
    m = k - better
    miss = np.ones(len(m))
    for i in range(max(int(m.max(initial=0)), 0)):
        step = np.clip(u - i, 0, None) / (u + r - i).clip(min=1)
        miss = np.where(i < m, miss * step, miss)
    return np.where(m <= 0, 0.0, 1.0 - miss)


def topk_weights(sim, k: int) -> np.ndarray:
    """(queries, gallery) weights summing to min(k, n) per row: 1 for items certainly in the top k,
    the shared remainder for items tied at the k-th score, 0 otherwise (the expected top-k membership)."""
    sim = np.asarray(sim, dtype=np.float64)
    k = min(k, sim.shape[1])
    kth = -np.sort(-sim, axis=1)[:, k - 1:k]
    above = sim > kth
    at = sim == kth
    room = k - above.sum(1, keepdims=True)
    return above + at * (room / at.sum(1, keepdims=True))


def recall_metrics(sim, relevant, ks=(1, 5, 10)) -> dict:
    """Recall@k, median and mean rank, with the gallery size and each figure's chance level (the same
    figure for a scorer that ranks everything equal, i.e. a random ranking)."""
    sim, mask = _check(sim, relevant)
    n, q = sim.shape[1], sim.shape[0]
    ranks, chance_ranks = expected_ranks(sim, mask), expected_ranks(np.zeros(sim.shape), mask)
    out: dict = {"n_queries": q, "gallery": n}
    for k in ks:
        out[f"r_at_{k}"] = float(hit_at_k(sim, mask, k).mean()) if q else None
        out[f"chance_r_at_{k}"] = float(hit_at_k(np.zeros(sim.shape), mask, k).mean()) if q else min(k, n) / n
    out["median_rank"] = float(np.median(ranks)) if q else None
    out["mean_rank"] = float(ranks.mean()) if q else None
    out["chance_median_rank"] = float(np.median(chance_ranks)) if q else (n + 1) / 2
    return out


def positive_sets(labels) -> np.ndarray:
    """Boolean (n, observations) matrix of positive findings from 1/0/-1/NaN labels (uncertain is not positive)."""
    labels = np.asarray(labels, dtype=np.float64)
    return labels == 1.0


def label_hit_rate(sim, query_pos, gallery_pos) -> dict:
    """Share of queries whose top-1 retrieved item has exactly the query's set of positive observations
    (tie-aware), and the chance level: the expected rate of a uniformly random retrieval."""
    sim = np.asarray(sim, dtype=np.float64)
    query_pos, gallery_pos = np.asarray(query_pos, bool), np.asarray(gallery_pos, bool)
    same = (query_pos[:, None, :] == gallery_pos[None, :, :]).all(-1)  # (queries, gallery)
    w = topk_weights(sim, 1)
    return {"label_hit_at_1": float((w * same).sum(1).mean()) if len(sim) else None,
            "chance_label_hit_at_1": float(same.mean()) if len(sim) else None,
            "n_queries": int(sim.shape[0]), "gallery": int(sim.shape[1])}


def precision_at_k(sim, query_pos, gallery_pos, observations, k: int = 5) -> dict:
    """Per observation, over the queries positive for it: the share of the top k retrieved items that
    are positive for it too (tie-aware); chance = the observation's prevalence in the gallery."""
    sim = np.asarray(sim, dtype=np.float64)
    query_pos, gallery_pos = np.asarray(query_pos, bool), np.asarray(gallery_pos, bool)
    kk = min(k, sim.shape[1])
    w = topk_weights(sim, kk)
    per_query = (w @ gallery_pos.astype(np.float64)) / kk  # (queries, observations)
    out = {}
    for j, obs in enumerate(observations):
        rows = query_pos[:, j]
        out[obs] = {"precision": float(per_query[rows, j].mean()) if rows.any() else None,
                    "n_queries": int(rows.sum()), "chance": float(gallery_pos[:, j].mean()), "k": kk}
    return out
