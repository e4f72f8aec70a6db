"""Bootstrap confidence intervals: resample the evaluation units (queries, images, studies) with replacement."""

from __future__ import annotations

from typing import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000


def bootstrap_ci(statistic: Callable[[np.ndarray], float | None], n: int, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of `statistic(indices)` over `resamples` bootstrap draws of range(n).

    A draw where the statistic is undefined (None or NaN, e.g. an AUROC on one class only) is skipped;
    None when n is 0 or fewer than half the draws are defined (the interval would say little)."""
    if n == 0 or resamples < 1:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        v = statistic(rng.integers(0, n, n))
        if v is not None and np.isfinite(v):
            values.append(v)
    if len(values) < resamples / 2:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mean_ci(values, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """{value, ci, n} for the mean of per-unit values (hits, ranks, margins)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return {"value": None, "ci": None, "n": 0}
    return {"value": float(values.mean()), "ci": bootstrap_ci(lambda i: values[i].mean(), len(values), resamples, seed),
            "n": len(values)}


def overlaps(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    """Whether two intervals overlap; None when either is missing."""
    if a is None or b is None:
        return None
    return not (a[1] < b[0] or b[1] < a[0])
