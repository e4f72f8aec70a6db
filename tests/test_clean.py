"""The clean stage end to end: traps caught, labels against the truth, policies, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.chexpert import OBSERVATIONS
from components.reports.clean import clean
from components.stages import clean as stage


def _checks(clean_dir, ingest_dir=None):
    """The clean stage's asset checks on a given output (absolute paths: the project root is unused)."""
    from pathlib import Path
    from types import SimpleNamespace

    params = SimpleNamespace(clean=SimpleNamespace(out=str(clean_dir), input=str(ingest_dir)))
    return SimpleNamespace(conservation=lambda: stage.check_clean_conservation(params, Path("/")),
                           phi_free=lambda: stage.check_clean_phi_free(params, Path("/")),
                           quality=lambda: stage.check_clean_quality_suite(params, Path("/")))


@pytest.fixture(scope="module")
def outputs(clean_dir, synth_dir):
    return {
        "reports": pd.read_parquet(clean_dir / "reports.parquet"),
        "quarantine": pd.read_parquet(clean_dir / "quarantine.parquet"),
        "summary": json.loads((clean_dir / "summary.json").read_text()),
        "truth": pd.read_parquet(synth_dir / "truth.parquet").assign(study_id=lambda t: t["study_id"].astype(str)),
    }


def _variant(small_params, tmp_path, **changes):
    """Run the clean stage again on the session's ingest output with changed params."""
    cfg = small_params.clean.model_copy(update={"out": str(tmp_path / "clean"),
                                                "metrics": str(tmp_path / "m.json"), **changes})
    return clean(cfg, progress=False), tmp_path / "clean"


def test_report_phi_traps_quarantined_and_clean_reports_kept(outputs):
    truth, q = outputs["truth"], outputs["quarantine"]
    planted = set(truth.loc[truth["trap"] == "report_phi", "study_id"])
    assert planted and planted <= set(q.loc[q["reason"] == "report_phi", "study_id"])
    assert set(q["reason"]) == {"report_phi"}  # nothing else in the synthetic data is bad text
    assert outputs["summary"]["traps"]["all_accounted"]
    assert not q["detail"].str.contains("Holloway|@|555", regex=True).any()  # details carry kinds only


def test_conservation_and_checks_pass(outputs, clean_dir, ingest_dir):
    assert _checks(clean_dir, ingest_dir).conservation()["passed"]
    assert _checks(clean_dir).phi_free()["passed"]
    gx = _checks(clean_dir).quality()
    assert gx["passed"], gx["failed_expectations"]
    assert (clean_dir / "gx" / "results.json").exists() and not (clean_dir / "gx" / "data_docs").exists()
    assert (clean_dir / "_run" / "data_docs" / "index.html").exists()  # in the run folder DVC ignores


def test_labels_agree_with_the_truth(outputs):
    merged = outputs["reports"].merge(outputs["truth"], on="study_id", suffixes=("", "_truth"))
    agree = [(merged[o].fillna(9) == merged[f"{o}_truth"].fillna(9)).mean() for o in OBSERVATIONS]
    assert min(agree) >= 0.9, dict(zip(OBSERVATIONS, agree))
    assert list(outputs["reports"].columns[:3]) == ["study_id", "subject_id", "split"]


def test_sections_and_style_flags(outputs):
    reports, truth = outputs["reports"], outputs["truth"].set_index("study_id")
    for _, row in reports.iterrows():
        style = truth.loc[row["study_id"], "style"]
        if style == "impression_only":
            assert row["impression_only"] and row["impression"]
        if style == "full":
            assert row["findings"] and row["impression"] and not row["impression_only"]
    assert (reports["n_chars"] == reports["text"].str.len()).all()
    assert not reports["text"].str.contains("___|XXXX", regex=True).any()  # placeholders unified


def test_redact_policy_keeps_phi_studies_without_phi(small_params, tmp_path, outputs):
    summary, out = _variant(small_params, tmp_path, phi_policy="redact")
    reports = pd.read_parquet(out / "reports.parquet")
    planted = set(outputs["truth"].loc[outputs["truth"]["trap"] == "report_phi", "study_id"])
    redacted = reports[reports["study_id"].isin(planted)]
    assert len(redacted) == len(planted) and (redacted["phi_redacted"] > 0).all()
    assert redacted["text"].str.contains("[DEID]", regex=False).all()
    assert _checks(out).phi_free()["passed"] and summary["quality"]["success"]


def test_off_policy_lets_phi_through_and_both_gates_fail(small_params, tmp_path):
    summary, out = _variant(small_params, tmp_path, phi_policy="off")
    assert not _checks(out).phi_free()["passed"]
    assert not summary["quality"]["success"]
    assert any("phi_spans" in json.dumps(f) for f in _checks(out).quality()["failed_expectations"])


def test_dicom_flags_from_ingest_follow_the_policy(small_params, synth_dir, tmp_path):
    from components.ingest.run import ingest

    ing = small_params.ingest.model_copy(update={"dicom_phi": "flag", "out": str(tmp_path / "ing"),
                                                 "metrics": str(tmp_path / "i.json")})
    ingest(ing, progress=False)
    summary, _ = _variant(small_params, tmp_path, input=str(tmp_path / "ing"))
    by_reason = summary["studies"]["by_reason"]
    assert by_reason["dicom_identifying_header"] >= 1 and by_reason["burned_in_annotation"] >= 1
    summary, out = _variant(small_params, tmp_path, input=str(tmp_path / "ing"), dicom_phi="record")
    kept = pd.read_parquet(out / "reports.parquet")
    stripped = kept[kept["dicom_must_strip"].map(len) > 0]
    assert len(stripped) == by_reason["dicom_identifying_header"] + by_reason["burned_in_annotation"]
    assert "PatientName" in {a for attrs in stripped["dicom_must_strip"] for a in attrs}


def test_bad_input_is_quarantined_with_reasons(small_params, tmp_path, ingest_dir):
    studies = pd.read_parquet(ingest_dir / "studies.parquet").head(4).copy()
    studies["report"] = studies["report"].map(lambda t: t.encode())
    studies.loc[0, "report"] = b""
    studies.loc[1, "report"] = b"x" * 10_000_000  # a 10 MB blob
    studies.loc[2, "report"] = b"Small right effusion. Temp 38\xb0C."  # Windows-1252 degree sign
    bad = tmp_path / "bad"
    bad.mkdir()
    studies.to_parquet(bad / "studies.parquet")
    summary, out = _variant(small_params, tmp_path, input=str(bad))
    reasons = dict(pd.read_parquet(out / "quarantine.parquet")[["study_id", "reason"]].values)
    assert reasons == {studies.loc[0, "study_id"]: "report_empty", studies.loc[1, "study_id"]: "report_too_long",
                       studies.loc[2, "study_id"]: "report_not_utf8"}
    assert summary["studies"]["out"] == 1 and summary["conservation_ok"]


def test_missing_input_is_a_clear_error(small_params, tmp_path):
    with pytest.raises(FileNotFoundError, match="run `cxr ingest` first"):
        _variant(small_params, tmp_path, input=str(tmp_path / "nowhere"))
