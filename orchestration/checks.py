"""Asset checks: each reads the stage's written output, not what the stage said about it."""

from __future__ import annotations

import json

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from orchestration.resources import CxrProject


@asset_check(asset="ingested_studies", blocking=True,
             description="Rows in = rows out + rows quarantined (studies and images); no subject in two splits.")
def ingest_conservation(project: CxrProject) -> AssetCheckResult:
    from components.ingest.audit import conservation

    result = conservation(project.path / project.params().ingest.out)
    return AssetCheckResult(passed=bool(result["ok"]), metadata={
        "studies": MetadataValue.json(result["studies"]), "images": MetadataValue.json(result["images"]),
        "subjects_in_two_splits": result["subjects_in_two_splits"]})


@asset_check(asset="ingested_studies",
             description="Synthetic data only: every planted trap ended where it should (quarantined or passed on).")
def ingest_traps_accounted(project: CxrProject) -> AssetCheckResult:
    summary = json.loads((project.path / project.params().ingest.out / "summary.json").read_text())
    traps = summary.get("traps")
    if traps is None:
        return AssetCheckResult(passed=True, metadata={"note": "source has no truth table"})
    return AssetCheckResult(passed=bool(traps["all_accounted"]), severity=AssetCheckSeverity.WARN,
                            metadata={"by_trap": MetadataValue.json(traps["by_trap"]),
                                      "clean_studies_quarantined": MetadataValue.json(
                                          traps["clean_studies_quarantined"])})


checks = [ingest_conservation, ingest_traps_accounted]
