"""`cxr audit-phi`: the PHI synth planted is found wherever it is, and nowhere downstream of clean."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from components.cli import app
from components.privacy.audit import audit, planted

runner = CliRunner()


def test_pipeline_artifacts_after_clean_hold_no_planted_phi(small_params, clean_dir, variants_dir):
    summary = audit(small_params.audit)
    assert summary["passed"] and summary["leaks"] == []
    assert summary["planted_values"] >= 4 and summary["files_scanned"] >= 8
    report = json.loads(Path(small_params.audit.out).read_text())
    assert report["passed"] and json.loads(Path(small_params.audit.metrics).read_text())["phi_leaks"] == 0


def test_audit_finds_planted_phi_where_it_is(small_params, ingest_dir, tmp_path):
    # ingest keeps the raw reports by design: the audit must see the planted values there
    raw = audit(small_params.audit.model_copy(update={
        "paths": [str(ingest_dir)], "out": str(tmp_path / "a.json"), "metrics": str(tmp_path / "m.json")}))
    found_kinds = {leak["kind"] for leak in raw["leaks"]}
    assert not raw["passed"] and len(found_kinds) >= 2, found_kinds
    assert all(leak["file"].endswith("studies.parquet") for leak in raw["leaks"])  # decoded Parquet text


def test_a_leak_downstream_fails_the_cli_without_repeating_the_phi(small_params, clean_dir, tmp_path, monkeypatch):
    needles = planted(small_params.audit.truth)
    name = next(n for n in needles if n["kind"] == "person_name")
    dicom = next(n for n in needles if n["kind"].startswith("dicom:"))
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "run.log").write_text(f"2026-01-01 10:00:01 INFO embedding report of {name['value']}\n")
    pd.DataFrame({"text": [f"Patient {dicom['value']} seen."]}).to_parquet(leaky / "table.parquet")
    (leaky / "fine.log").write_text(f"{name['value']}son and X{name['value']}Y are other words\n")
    out = tmp_path / "audit.json"
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"audit": {
        "truth": small_params.audit.truth, "paths": [str(clean_dir), str(leaky)], "dagster_home": False,
        "out": str(out), "metrics": str(tmp_path / "m.json")}}))
    result = runner.invoke(app, ["audit-phi", "--params", str(params)])
    assert result.exit_code == 1
    report = json.loads(out.read_text())
    assert {(Path(leak["file"]).name, leak["kind"]) for leak in report["leaks"]} == {
        ("run.log", "person_name"), ("table.parquet", dicom["kind"])}
    assert "planted PHI value(s) found downstream of clean" in result.stderr and "run.log" in result.stderr
    assert name["value"] not in out.read_text() + result.output  # the report names files, never the PHI


def test_a_value_planted_in_several_studies_is_a_leak_of_each(tmp_path):
    """Every header-PHI study carries the same DICOM values; the audit searches each distinct value once
    but reports it for every study it was planted in, and a time only inside tables."""
    from components.params import AuditParams
    from components.synth.dicom import IDENTIFYING_VALUES

    truth = tmp_path / "truth.parquet"
    pd.DataFrame({"study_id": ["s1", "s2", "s3"], "trap": ["dicom_header_phi", "dicom_header_phi", "report_phi"],
                  "planted_phi": ["[]", "[]", json.dumps([{"kind": "time", "value": "10:15"},
                                                          {"kind": "person_name", "value": "Ortega"}])]}
                 ).to_parquet(truth)
    keyword, value = next(iter(IDENTIFYING_VALUES.items()))
    art = tmp_path / "artifacts"
    art.mkdir()
    (art / "log.txt").write_text(f"10:15 loaded {value}\n")  # a clock time in a log is not the planted time
    pd.DataFrame({"text": ["seen at 10:15 by Dr Ortega"]}).to_parquet(art / "t.parquet")
    cfg = AuditParams(truth=str(truth), paths=[str(art)], dagster_home=False, out=str(tmp_path / "a.json"),
                      metrics=str(tmp_path / "m.json"))
    leaks = {(Path(x["file"]).name, x["kind"], x["study_id"]) for x in audit(cfg)["leaks"]}
    assert leaks == {("log.txt", f"dicom:{keyword}", "s1"), ("log.txt", f"dicom:{keyword}", "s2"),
                     ("t.parquet", "time", "s3"), ("t.parquet", "person_name", "s3")}


def test_tool_state_and_run_folders_are_audited_but_the_metric_counts_what_dvc_tracks(tmp_path, monkeypatch):
    """$DAGSTER_HOME and the run folders are searched (logs can leak), but their file counts vary with
    what the UI and earlier runs left there, so the DVC metric counts only the files DVC tracks."""
    from components.params import AuditParams
    from components.synth.dicom import IDENTIFYING_VALUES

    truth = tmp_path / "truth.parquet"
    pd.DataFrame({"study_id": ["s1"], "trap": ["dicom_header_phi"], "planted_phi": ["[]"]}).to_parquet(truth)
    keyword, value = next(iter(IDENTIFYING_VALUES.items()))
    art, home = tmp_path / "artifacts", tmp_path / "dagster_home"
    art.mkdir()
    home.mkdir()
    (art / "a.json").write_text("{}")
    (art / "b.json").write_text("{}")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    cfg = AuditParams(truth=str(truth), paths=[str(art)], dagster_home=True, out=str(tmp_path / "a.json"),
                      metrics=str(tmp_path / "m.json"))

    def run() -> tuple[dict, str]:
        return audit(cfg), Path(cfg.metrics).read_text()

    first, metrics = run()
    assert first["passed"] and first["files_scanned"] == 2 and first["tool_state_files_scanned"] == 0
    assert json.loads(metrics) == {"phi_leaks": 0, "pipeline_files_scanned": 2, "planted_values": len(IDENTIFYING_VALUES)}

    (home / "runs.db").write_text("a harmless run record")
    (art / "_run").mkdir()
    (art / "_run" / "audit-phi.json").write_text("{}")  # a run log a rerun finds beside the metrics
    second, unchanged = run()
    assert second["files_scanned"] == 4 and second["tool_state_files_scanned"] == 1 and unchanged == metrics

    (home / "compute.log").write_text(f"loaded {value}\n")
    (art / "_run" / "stage.json").write_text(f"{{\"host\": \"{value}\"}}")
    leaked = audit(cfg)
    assert {(Path(x["file"]).name, x["kind"]) for x in leaked["leaks"]} == {
        ("compute.log", f"dicom:{keyword}"), ("stage.json", f"dicom:{keyword}")}
    assert json.loads(Path(cfg.metrics).read_text())["phi_leaks"] == 2
