"""Stage `clean` -> asset `clean_reports`: normalised, sectioned, de-identified, labelled, validated."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from components.stages.base import Check, Option, Stage

STAGE = Stage(
    name="clean", asset="clean_reports", group="reports",
    description="Normalised, sectioned, de-identified reports with CheXpert labels, validated by Great Expectations.",
    params=("clean",),
    inputs=("${clean.input}",), outs=("${clean.out}",), metrics=("${clean.metrics}",),
    options=(Option("--input", "clean.input", str, "ingest output folder"),
             Option("--out", "clean.out", str, "output folder"),
             Option("--workers", "clean.workers", int, "processes")),
    checks=(Check("clean_quality_suite", "Great Expectations suite over the cleaned table (ids, text bounds, "
                                         "sections, labels, splits, PHI flags, duplicates)."),
            Check("clean_phi_free", "The PHI detector finds nothing in any stored report text."),
            Check("clean_conservation", "Studies ingested = reports written + studies quarantined by the clean stage.")),
)


def run(params) -> dict:
    from components.reports.clean import clean

    summary = clean(params.clean)
    quality = summary["quality"]
    if not quality["success"] and params.clean.quality.blocking:
        from components.reports.clean import data_docs_dir

        docs = (data_docs_dir(params.clean.out) / "index.html").resolve()
        summary["gate_failed"] = (f"Great Expectations suite failed ({', '.join(quality.get('failed', [])[:5])}); "
                                  f"see the Data Docs at {docs} (--set clean.quality.blocking=false to carry on)")
    return summary


def metadata(params, summary: dict) -> dict:
    import pandas as pd

    from components.pipes import md, md_table
    from components.reports.clean import data_docs_dir

    out = Path(params.clean.out)
    prevalence = [{"observation": o, **v} for o, v in summary["label_prevalence"].items()]
    reasons = [{"reason": r, "count": n} for r, n in summary["studies"]["by_reason"].items()]
    styles = [{"style": k, "reports": v} for k, v in summary["styles"].items()]
    examples = pd.read_parquet(out / "reports.parquet", columns=["text"])["text"].head(3)
    shown = "\n\n".join(f"```\n{t[:400]}\n```" for t in examples)  # already de-identified text
    return {
        "studies_in": summary["studies"]["in"], "studies_out": summary["studies"]["out"],
        "studies_quarantined": summary["studies"]["quarantined"],
        "quarantine_reasons": md(md_table(reasons)), "styles": md(md_table(styles)),
        "label_prevalence": md(md_table(prevalence)), "examples": md(shown),
        "phi_rate": summary["phi"]["rate"], "gx_success": summary["quality"]["success"],
        "data_docs": {"raw_value": str((data_docs_dir(out) / "index.html").resolve()), "type": "path"},
        "reports_per_second": summary["reports_per_second"],  # from the run, not from a tracked file
        **_agreement_meta(summary.get("reference_agreement") or {}),
    }


def _agreement_meta(agreement: dict) -> dict:
    """The labeler against each reference label file: a markdown table per file, macro F1 as a number."""
    from components.pipes import md, md_table

    meta = {}
    for source, a in agreement.items():
        rows = [{"observation": o, **{k: v[k] for k in ("precision", "recall", "f1", "support")}}
                for o, v in a["observations"].items()]
        key = "agreement_" + "".join(c if c.isalnum() else "_" for c in source)
        meta[key] = md(f"{a['studies']} studies labelled by `{source}`\n\n" + md_table(rows))
        if a["macro_f1"] is not None:
            meta[f"{key}_macro_f1"] = a["macro_f1"]
    return meta


def check_clean_quality_suite(params, root: Path) -> dict:
    """The Great Expectations verdict the stage saved."""
    from components.reports.clean import data_docs_dir

    out = root / params.clean.out
    results = json.loads((out / "gx" / "results.json").read_text())
    return {"passed": bool(results["success"]), "evaluated": len(results["results"]),
            "failed_expectations": [r["name"] for r in results["results"] if not r["success"]],
            "data_docs": {"raw_value": str(data_docs_dir(out) / "index.html"), "type": "path"}}


def check_clean_phi_free(params, root: Path) -> dict:
    """Run the PHI detector again over every stored text: passing needs zero spans of the PHI kinds
    the stage ran with (clean.phi_kinds, recorded in summary.json)."""
    import pandas as pd

    from components.privacy.phi import DEFAULT_KINDS, detect_phi

    out = root / params.clean.out
    try:
        phi_kinds = json.loads((out / "summary.json").read_text())["phi"]["kinds_checked"]
    except (FileNotFoundError, KeyError, ValueError):
        phi_kinds = list(DEFAULT_KINDS)
    table = pd.read_parquet(out / "reports.parquet", columns=["text", "dicom_must_strip"])
    kinds: Counter = Counter()
    flagged = 0
    for text in table["text"]:
        spans = detect_phi(text, phi_kinds)
        flagged += bool(spans)
        kinds.update(s.kind for s in spans)
    return {"passed": flagged == 0, "reports": len(table), "reports_with_phi": flagged,
            "kinds": dict(sorted(kinds.items())),
            "dicom_must_strip": int(table["dicom_must_strip"].map(len).gt(0).sum())}


def check_clean_conservation(params, root: Path) -> dict:
    """Studies ingested = reports written + studies quarantined by this stage."""
    import pyarrow.parquet as pq

    from components.quarantine import recount

    clean_dir, ingest_dir = root / params.clean.out, root / params.clean.input
    n_in = pq.ParquetFile(ingest_dir / "studies.parquet").metadata.num_rows
    n_out = pq.ParquetFile(clean_dir / "reports.parquet").metadata.num_rows
    result = recount(n_in, n_out, clean_dir / "quarantine.parquet", "study")
    return {"passed": result.pop("ok"), **result}
