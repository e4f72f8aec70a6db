"""Checks on a variants-stage output, recomputed from variants.parquet (the Dagster check calls this)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def acceptance(variants_dir: str | Path, threshold: float) -> dict:
    """Per kind (and per error category): accepted / applicable must reach `threshold`."""
    table = pd.read_parquet(Path(variants_dir) / "variants.parquet",
                            columns=["kind", "error_category", "valid", "reject_reason"])
    table["group"] = table["error_category"].map(lambda c: f"error:{c}" if isinstance(c, str) else None)
    table["group"] = table["group"].fillna(table["kind"])
    applicable = table[table["reject_reason"].fillna("") != "not_applicable"]
    rates = applicable.groupby("group")["valid"].mean().round(4).to_dict()
    below = {k: v for k, v in rates.items() if v < threshold}
    return {"passed": not below and bool(rates), "acceptance": rates, "below": below}
