"""What each stage tells Dagster about its output (counts, tables, pictures, provenance)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from components.pipes import md, md_table, png_md, report_materialization, under_dagster


def code_version() -> str:
    """Hash of the library's source: changes whenever stage logic does."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".json", ".txt", ".csv"):
            h.update(path.as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _provenance(params, section: str) -> dict:
    return {"params_hash": params.digest(section), "code_version": code_version(),
            "params": {"raw_value": getattr(params, section).model_dump(mode="json"), "type": "json"}}


def report_synth(params, summary: dict) -> None:
    if not under_dagster():
        return
    traps = [{"trap": k, "studies": v} for k, v in summary["traps"].items()]
    styles = [{"style": k, "studies": v} for k, v in summary["styles"].items()]
    report_materialization({
        "studies": summary["n_studies"], "subjects": summary["n_subjects"], "images": summary["n_images"],
        "planted_traps": md(md_table(traps)), "report_styles": md(md_table(styles)),
        "seconds": summary["seconds"], **_provenance(params, "synth"),
    })


def report_ingest(params, summary: dict) -> None:
    if not under_dagster():
        return
    reasons = [{"level": level, "reason": r, "count": n}
               for level in ("studies", "images") for r, n in summary[level]["by_reason"].items()]
    meta = {
        "studies_in": summary["studies"]["in"], "studies_out": summary["studies"]["out"],
        "studies_quarantined": summary["studies"]["quarantined"], "images_out": summary["images"]["out"],
        "quarantine_reasons": md(md_table(reasons)),
        "splits": md(md_table([{"split": k, **v} for k, v in summary["splits"].items()])),
        "images_per_second": summary["images_per_second"], **_provenance(params, "ingest"),
    }
    preview = Path(params.ingest.out) / "preview.png"
    if preview.exists():
        meta["preview"] = png_md(preview.read_bytes(), "ingested images")
    if "traps" in summary:
        meta["traps_all_accounted"] = summary["traps"]["all_accounted"]
    report_materialization(meta)


def report_clean(params, summary: dict) -> None:
    if not under_dagster():
        return
    import pandas as pd

    out = Path(params.clean.out)
    prevalence = [{"observation": o, **v} for o, v in summary["label_prevalence"].items()]
    reasons = [{"reason": r, "count": n} for r, n in summary["studies"]["by_reason"].items()]
    styles = [{"style": k, "reports": v} for k, v in summary["styles"].items()]
    examples = pd.read_parquet(out / "reports.parquet", columns=["text"])["text"].head(3)
    shown = "\n\n".join(f"```\n{t[:400]}\n```" for t in examples)  # already de-identified text
    report_materialization({
        "studies_in": summary["studies"]["in"], "studies_out": summary["studies"]["out"],
        "studies_quarantined": summary["studies"]["quarantined"],
        "quarantine_reasons": md(md_table(reasons)), "styles": md(md_table(styles)),
        "label_prevalence": md(md_table(prevalence)), "examples": md(shown),
        "phi_rate": summary["phi"]["rate"], "gx_success": summary["quality"]["success"],
        "data_docs": {"raw_value": str((out / "gx" / "data_docs" / "index.html").resolve()), "type": "path"},
        "reports_per_second": summary["reports_per_second"], **_provenance(params, "clean"),
    })


def report_variants(params, summary: dict) -> None:
    if not under_dagster():
        return
    import difflib

    import pandas as pd

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
    report_materialization({
        "variants": summary["variants"], "accepted": summary["accepted"],
        "acceptance": md(md_table(rates)), "reject_reasons": md(md_table(
            [{"reason": k, "count": v} for k, v in summary["reject_reasons"].items()])),
        "examples": md("\n\n".join(examples)), "generated": summary["generated"],
        "from_cache": summary["from_cache"], "backend": summary["backend"], **_provenance(params, "variants"),
    })


def report_encoder(params, summary: dict) -> None:
    if not under_dagster():
        return
    import json

    from components.plots import line_png

    lines = [json.loads(x) for x in (Path(params.encoder.out) / "metrics.jsonl").read_text().splitlines() if x]
    steps = [(x["step"], x["loss"]) for x in lines if "loss" in x and "step" in x]
    ev = summary["evaluation"]
    evaluation = [{"split": split, "R@1 before": before, "R@1 after": ev["r_at_1_after"].get(split)}
                  for split, before in ev["r_at_1_before"].items()]
    meta = {"final_loss": {"raw_value": summary["final_loss"], "type": "json"},
            "evaluation": md(md_table(evaluation)), "seconds": summary["seconds"],
            "base_model": summary["base_model"], **_provenance(params, "encoder")}
    if steps:
        meta["contrastive_loss"] = png_md(line_png([s for s, _ in steps], [v for _, v in steps], "loss"), "loss")
    report_materialization(meta)


def report_embed(params, summary: dict) -> None:
    if not under_dagster():
        return
    report_materialization({k: summary[k] for k in ("encoder_hash", "dim", "reports", "variants", "encoded",
                                                     "from_cache", "seconds")} | _provenance(params, "embed"))


def report_baseline(params, summary: dict) -> None:
    if not under_dagster():
        return
    ev = summary["evaluation"]
    rows = [{"split": s, "R@1 before": b, "R@1 after": ev["r_at_1_after"].get(s)} for s, b in ev["r_at_1_before"].items()]
    report_materialization({"evaluation": md(md_table(rows)), "mlm_steps": summary["mlm_steps"],
                            "seconds": summary["seconds"], **_provenance(params, "encoder")})
