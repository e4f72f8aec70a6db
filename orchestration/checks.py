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


@asset_check(asset="clean_reports", blocking=True,
             description="Great Expectations suite over the cleaned table (ids, text bounds, sections, labels, "
                         "splits, PHI flags, duplicates).")
def clean_quality_suite(project: CxrProject) -> AssetCheckResult:
    from components.reports.verify import quality

    out = project.path / project.params().clean.out
    result = quality(out)
    return AssetCheckResult(passed=bool(result["success"]), metadata={
        "failed_expectations": MetadataValue.json(result["failed"]),
        "evaluated": result["evaluated"],
        "data_docs": MetadataValue.path(str(out / "gx" / "data_docs" / "index.html"))})


@asset_check(asset="clean_reports", blocking=True,
             description="The PHI detector finds nothing in any stored report text.")
def clean_phi_free(project: CxrProject) -> AssetCheckResult:
    from components.reports.verify import phi_free

    result = phi_free(project.path / project.params().clean.out)
    return AssetCheckResult(passed=result["passed"], metadata={
        "reports_with_phi": result["reports_with_phi"], "kinds": MetadataValue.json(result["kinds"]),
        "dicom_must_strip": result["dicom_must_strip"]})


@asset_check(asset="clean_reports", blocking=True,
             description="Studies ingested = reports written + studies quarantined by the clean stage.")
def clean_conservation(project: CxrProject) -> AssetCheckResult:
    from components.reports.verify import conservation

    params = project.params()
    result = conservation(project.path / params.clean.out, project.path / params.clean.input)
    return AssetCheckResult(passed=result["ok"], metadata={k: v for k, v in result.items() if k != "ok"})


@asset_check(asset="report_variants", blocking=True,
             description="Accepted / applicable variants, per kind and error category, at least variants.min_acceptance.")
def variants_acceptance(project: CxrProject) -> AssetCheckResult:
    from components.variants.verify import acceptance

    params = project.params().variants
    result = acceptance(project.path / params.out, params.min_acceptance)
    return AssetCheckResult(passed=result["passed"], metadata={
        "below_threshold": MetadataValue.json(result["below"]),
        "acceptance": MetadataValue.json(result["acceptance"]), "threshold": params.min_acceptance})


checks = [ingest_conservation, ingest_traps_accounted, clean_quality_suite, clean_phi_free, clean_conservation,
          variants_acceptance]
