"""Stage `ingest` -> asset `ingested_studies`: studies, image shards and quarantine from a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from components.stages.base import Check, Option, Stage

STAGE = Stage(
    name="ingest", asset="ingested_studies", group="data",
    description="Studies table, image shards and quarantine from the configured source (params ingest.*).",
    params=("ingest",),
    inputs=("${ingest.input}",), outs=("${ingest.out}",), metrics=("${ingest.metrics}",), private=True,
    options=(Option("--source", "ingest.source", str, "synth | mimic | chexpert-plus | openi | manifest"),
             Option("--input", "ingest.input", str, "dataset root (or manifest CSV)"),
             Option("--image-root", "ingest.image_root", str, "folder holding the images when apart from the tables/reports"),
             Option("--out", "ingest.out", str, "output folder"),
             Option("--workers", "ingest.workers", int, "decoding processes"),
             Option("--partition", "ingest.partition", str, "one files/pNN folder of a MIMIC-layout source")),
    checks=(Check("ingest_conservation",
                  "Rows in = rows out + rows quarantined (studies and images); no subject in two splits."),
            Check("ingest_traps_accounted",
                  "Synthetic data only: every planted trap ended where it should (quarantined or passed on).",
                  blocking=False, warn=True)),
    extra_commands=("merge",),
)


def merge(params, part: Optional[list[str]] = None, out: Optional[str] = None) -> dict:
    """Merge the outputs of `cxr ingest --partition pNN` (--part FOLDER, once per partition, every
    partition of the input) into --out (default ingest.out): the output one un-partitioned run writes.
    Not recorded by DVC (README "Partitioned ingest")."""
    from types import SimpleNamespace

    from components.ingest.merge import merge as merge_parts
    from components.pipes import report_materialization

    given = {"out": out, "metrics": str(Path(out) / "metrics.json")} if out else {}  # as `cxr ingest --out`
    cfg = params.ingest.model_copy(update=given)
    summary = merge_parts(cfg, part or [], out)
    report_materialization(metadata(SimpleNamespace(ingest=cfg), summary) | {"partitions": ", ".join(summary["partitions"])})
    return summary


def run(params) -> dict:
    from components.ingest.run import ingest

    return ingest(params.ingest)


def metadata(params, summary: dict) -> dict:
    from components.pipes import md, md_table, png_md

    reasons = [{"level": level, "reason": r, "count": n}
               for level in ("studies", "images") for r, n in summary[level]["by_reason"].items()]
    meta = {
        "studies_in": summary["studies"]["in"], "studies_out": summary["studies"]["out"],
        "studies_quarantined": summary["studies"]["quarantined"], "images_out": summary["images"]["out"],
        "quarantine_reasons": md(md_table(reasons)),
        "splits": md(md_table([{"split": k, **v} for k, v in summary["splits"].items()])),
        "text_only_studies": summary["studies"].get("text_only", 0),
    }
    if "images_per_second" in summary:  # a merge decodes nothing
        meta["images_per_second"] = summary["images_per_second"]
    references = summary.get("references") or {}
    if references.get("files"):
        meta["reference_labels"] = md(md_table([{"file": f, "rows": n, "studies": references["studies"].get(f, 0)}
                                                for f, n in references["files"].items()]))
    preview = Path(params.ingest.out) / "preview.png"
    if preview.exists():
        meta["preview"] = png_md(preview.read_bytes(), "ingested images")
    if "traps" in summary:
        meta["traps_all_accounted"] = summary["traps"]["all_accounted"]
    return meta


def check_ingest_conservation(params, root: Path) -> dict:
    from components.ingest.audit import conservation

    result = conservation(root / params.ingest.out)
    return {"passed": bool(result["ok"]), "studies": result["studies"], "images": result["images"],
            "subjects_in_two_splits": result["subjects_in_two_splits"]}


def check_ingest_traps_accounted(params, root: Path) -> dict:
    summary = json.loads((root / params.ingest.out / "summary.json").read_text())
    traps = summary.get("traps")
    if traps is None:
        return {"passed": True, "note": "source has no truth table"}
    return {"passed": bool(traps["all_accounted"]), "by_trap": traps["by_trap"],
            "clean_studies_quarantined": traps["clean_studies_quarantined"]}
