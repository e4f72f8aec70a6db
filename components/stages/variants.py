"""Stage `variants` -> asset `report_variants`: equivalent and single-error rewrites, gated."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from components.stages.base import Check, Option, Stage

STAGE = Stage(
    name="variants", asset="report_variants", group="reports",
    description="Equivalent rewrites (positives) and single-error rewrites (hard negatives), each re-labelled and gated.",
    params=("variants",),
    inputs=("${variants.input}",), outs=("${variants.out}",), metrics=("${variants.metrics}",),
    options=(Option("--input", "variants.input", str, "clean stage output folder"),
             Option("--out", "variants.out", str, "output folder"),
             Option("--backend", "variants.backend", str, "rules | hf | openai")),
    checks=(Check("variants_acceptance", "Accepted / applicable variants, per kind and error category, "
                                         "at least variants.min_acceptance."),),
    extra_commands=("review",),
)


def review(params, out: str = "data/variants_review", per_stratum: int = 20, seed: int = 0,
           verdicts: Optional[list[str]] = None) -> dict:
    """Export a stratified sample of accepted variants for human review (sample.csv / sample.md in
    --out), or, with --verdicts FILE (repeatable: one per reviewer), import the filled-in CSVs into an
    acceptance-quality table (quality.csv / quality.json in --out/quality). Not a pipeline stage: a
    person reads the variants; the sample is seeded, so the same run gives the same sample."""
    from components.variants.review import export_review, import_verdicts

    if verdicts:
        return import_verdicts(out, verdicts, Path(out) / "quality")
    return export_review(params.variants.out, params.variants.input, out, per_stratum, seed)


def run(params) -> dict:
    from components.variants.run import run_variants

    return run_variants(params.variants)


def metadata(params, summary: dict) -> dict:
    import difflib

    import pandas as pd

    from components.pipes import md, md_table

    out = Path(params.variants.out)
    table = pd.read_parquet(out / "variants.parquet")
    sources = pd.read_parquet(Path(params.variants.input) / "reports.parquet", columns=["study_id", "text"])
    source_of = dict(zip(sources["study_id"], sources["text"]))
    examples = []
    for _, row in table[table["valid"]].groupby(table["error_category"].fillna(table["kind"])).head(1).head(6).iterrows():
        diff = difflib.unified_diff(source_of[row["study_id"]].splitlines(), row["text"].splitlines(),
                                    "original", f"{row['kind']} {row['error_category'] or ''}".strip(), lineterm="")
        examples.append("```diff\n" + "\n".join(diff) + "\n```")
    rates = [{"kind": k, **v} for k, v in summary["by_kind"].items()]
    return {
        "variants": summary["variants"], "accepted": summary["accepted"],
        "acceptance": md(md_table(rates)), "reject_reasons": md(md_table(
            [{"reason": k, "count": v} for k, v in summary["reject_reasons"].items()])),
        "examples": md("\n\n".join(examples)), "generated": summary["generated"],
        "from_cache": summary["from_cache"], "backend": summary["backend"],
    }


def check_variants_acceptance(params, root: Path) -> dict:
    """Per kind (and per error category): accepted / applicable must reach variants.min_acceptance."""
    import pandas as pd

    threshold = params.variants.min_acceptance
    table = pd.read_parquet(root / params.variants.out / "variants.parquet",
                            columns=["kind", "error_category", "valid", "reject_reason"])
    group = table["error_category"].map(lambda c: f"error:{c}" if isinstance(c, str) else None)
    table["group"] = group.fillna(table["kind"])
    applicable = table[table["reject_reason"].fillna("") != "not_applicable"]
    rates = applicable.groupby("group")["valid"].mean().round(4).to_dict()
    below = {k: v for k, v in rates.items() if v < threshold}
    return {"passed": not below and bool(rates), "acceptance": rates, "below_threshold": below,
            "threshold": threshold}
