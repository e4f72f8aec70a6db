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
    values = [statistic(idx) for idx in draws(n, resamples, seed)]
    return percentile_ci([np.nan if v is None else v for v in values], level)


def draws(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n) bootstrap index draws of range(n)."""
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def percentile_ci(values, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of per-draw values; NaN = undefined draw, skipped; None when fewer than half
    the draws are defined."""
    values = np.asarray(values, dtype=np.float64)
    ok = values[np.isfinite(values)]
    if not len(values) or len(ok) < len(values) / 2:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(ok, [alpha, 1 - alpha])
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
