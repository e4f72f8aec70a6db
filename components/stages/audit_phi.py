"""Stage `audit-phi` -> asset `phi_audit`: every artifact after clean searched for the PHI synth planted.

Last in the pipeline: its inputs are every stage output downstream of clean, so DVC and Dagster run it
after them; `audit.paths` lists what it searches (plus $DAGSTER_HOME when audit.dagster_home).
"""

from __future__ import annotations

import json
from pathlib import Path

from components.stages.base import Check, Stage

STAGE = Stage(
    name="audit-phi", asset="phi_audit", group="privacy",
    description="Every artifact downstream of clean (tables, models, metrics, Data Docs, Dagster storage) "
                "searched for the PHI that synth planted; fails on any leak.",
    params=("audit", "clean.out", "variants.out", "encoder.out", "baselines.out", "embed.out", "clip.out",
            "evaluate.out", "package.out"),
    inputs=("${audit.truth}", "${clean.out}", "${variants.out}", "${encoder.out}", "${baselines.out}",
            "${embed.out}", "${clip.out}", "${evaluate.out}", "${package.out}"),
    metrics=("${audit.metrics}", "${audit.out}"),
    checks=(Check("phi_audit_zero_leaks",
                  "No PHI value planted by synth occurs in any artifact downstream of clean."),),
)


def run(params) -> dict:
    from components.privacy.audit import audit

    summary = audit(params.audit)
    shown = {k: v for k, v in summary.items() if k != "leaks"} | {"leaks": len(summary["leaks"])}
    if summary["leaks"]:
        first = summary["leaks"][0]
        shown["gate_failed"] = (f"{len(summary['leaks'])} planted PHI value(s) found downstream of clean, first in "
                                f"{first['file']} ({first['kind']} of study {first['study_id']}); "
                                f"see {params.audit.out}")
    return shown


def metadata(params, summary: dict) -> dict:
    return {"leaks": summary["leaks"], "files_scanned": summary["files_scanned"],
            "planted_values": summary["planted_values"], "bytes_scanned": summary["bytes_scanned"]}


def check_phi_audit_zero_leaks(params, root: Path) -> dict:
    report = json.loads((root / params.audit.out).read_text())
    return {"passed": bool(report["passed"]) and not report["leaks"], "leaks": len(report["leaks"]),
            "kinds": sorted({leak["kind"] for leak in report["leaks"]}),
            "files_scanned": report["files_scanned"], "planted_values": report["planted_values"]}
