"""The `clean_reports` Great Expectations suite: a realistic cleaned table passes, and each planted
defect fails exactly the expectation written for it (one table of cases, as in peft's tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from components.chexpert import OBSERVATIONS
from components.params import QualityParams
from components.quality import SUITE_NAME, validate_reports

N = 1000
FINDINGS = [
    "Heart size is normal. Lungs are clear. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. Small left pleural effusion with adjacent atelectasis.",
    "Right lower lobe opacity, concerning for pneumonia. No pneumothorax.",
    "Endotracheal tube terminates 4 cm above the carina. Diffuse interstitial edema.",
]
IMPRESSIONS = [
    "No acute cardiopulmonary process.",
    "Small left effusion.",
    "Right lower lobe pneumonia.",
    "Pulmonary edema; tube in standard position.",
]


def make_reports(n: int = N, seed: int = 0) -> pd.DataFrame:
    """A cleaned-reports table as `cxr clean` writes it: 80/10/10 patient-level split, ~10%
    impression-only, ~5% findings-only, 2% unsectioned, a few templated duplicate texts."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % len(FINDINGS)
        # Unique detail per study (as real reports have), except the templated normals below.
        findings = f"{FINDINGS[k]} Compared with study of day {i}."
        impression = f"{IMPRESSIONS[k]} Follow-up {i % 97} weeks."
        if i % 10 == 1:
            findings = None
        elif i % 20 == 2:
            impression = None
        elif i % 50 == 3:
            findings = impression = None  # unsectioned report: text only
        text = " ".join(s for s in (findings and f"FINDINGS: {findings}",
                                    impression and f"IMPRESSION: {impression}") if s)
        if i % 50 == 3:
            text = f"Portable chest radiograph {i}: lines and tubes unchanged."
        if i % 100 == 5:
            text = "IMPRESSION: No acute cardiopulmonary process."  # 1% templated normals
        patient = i // 2  # two studies per patient, same split (patient-level split)
        split = ("train",) * 8 + ("val", "test")
        rows.append({
            "study_id": f"s{50_000_000 + i}", "subject_id": f"p{10_000_000 + patient}",
            "split": split[patient % 10], "text": text, "findings": findings,
            "impression": impression, "n_chars": len(text),
            "impression_only": findings is None and impression is not None,
            "findings_only": impression is None and findings is not None, "phi_spans": 0,
        })
    df = pd.DataFrame(rows)
    for c in OBSERVATIONS:
        df[c] = rng.choice([1.0, 0.0, -1.0, np.nan], size=n, p=[0.15, 0.15, 0.05, 0.65])
    return df


def _dup_study(df):
    df.loc[7, "study_id"] = df.loc[6, "study_id"]


def _null_subject(df):
    df.loc[11, "subject_id"] = None


def _empty_text(df):
    df.loc[12, ["text", "n_chars"]] = ["", 0]


def _bad_label(df):
    df.loc[13, "Cardiomegaly"] = 2.0


def _bad_split(df):
    df.loc[df.index[df["split"] == "val"][0], "split"] = "validation"


def _all_train(df):
    df["split"] = "train"


def _leak(df):
    df.loc[1, "split"] = "test" if df.loc[0, "split"] != "test" else "train"  # patient 0's 2nd study


def _official_mimic_split(df):
    """MIMIC-CXR's official split: validate and test each under 2% of studies, as released."""
    df["split_source"] = "source"
    df["split"] = ["val" if i % 100 == 0 else "test" if i % 100 == 1 else "train" for i in df.index // 2]


def _phi(df):
    df.loc[14, "phi_spans"] = 1


def _dup_texts(df):
    df.loc[df.index[::4], "text"] = "IMPRESSION: No acute cardiopulmonary process."  # 25% + 1% template


def _no_sections(df):
    df.loc[df.index[df.index % 2 == 0], ["findings", "impression"]] = None  # coverage 0.98 -> ~0.49


CASES = {
    "duplicated study_id": (_dup_study, {"expect_column_values_to_be_unique(study_id)"}),
    "null subject_id": (_null_subject, {"expect_column_values_to_not_be_null(subject_id)"}),
    "empty text": (_empty_text, {"expect_column_values_to_be_between(n_chars)"}),
    "label 2.0": (_bad_label, {"expect_column_values_to_be_in_set(Cardiomegaly)"}),
    "split 'validation'": (_bad_split, {"expect_column_values_to_be_in_set(split)"}),
    "all train": (_all_train, {f"expect_column_mean_to_be_between(is_split_{s})"
                               for s in ("train", "val", "test")}),
    "subject in two splits": (_leak, {"expect_column_values_to_be_between(subject_splits)"}),
    "official split that leaks": (lambda df: (_official_mimic_split(df), _leak(df)),
                                  {"expect_column_values_to_be_between(subject_splits)"}),
    "phi_spans 1": (_phi, {"expect_column_values_to_be_between(phi_spans)"}),
    "duplicate texts": (_dup_texts, {"expect_column_mean_to_be_between(is_duplicate_text)"}),
    "section coverage": (_no_sections, {"expect_column_mean_to_be_between(has_section)"}),
}


@pytest.fixture(scope="module")
def gx():
    """Import great_expectations once for the module (~3 s); every validation after that is fast."""
    return pytest.importorskip("great_expectations")


@pytest.fixture(scope="module")
def reports() -> pd.DataFrame:
    return make_reports()


@pytest.fixture(scope="module")
def passing(gx, reports, tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    return validate_reports(reports, QualityParams(), out), out


def test_realistic_table_passes(passing):
    summary, out = passing
    assert summary["failed"] == [] and summary["success"] is True
    assert summary["evaluated"] >= 30  # 14 label sets + ids, text, split, PHI, shares
    assert summary["results_path"] == str(out / "results.json")


def test_results_json_and_data_docs(passing):
    summary, out = passing
    results = json.loads((out / "results.json").read_text())
    assert results["suite"] == SUITE_NAME and results["success"] is True
    assert results["statistics"]["evaluated_expectations"] == summary["evaluated"]
    by_name = {r["name"]: r for r in results["results"]}
    train = by_name["expect_column_mean_to_be_between(is_split_train)"]
    assert train["observed_value"] == pytest.approx(0.8)  # the share itself, readable in the report
    assert train["kwargs"] == {"column": "is_split_train", "min_value": 0.6, "max_value": 0.95}
    assert {r["expectation_type"] for r in results["results"]} >= {
        "expect_column_values_to_be_unique", "expect_table_row_count_to_be_between"}
    index = out / "data_docs" / "index.html"
    assert summary["data_docs"] == str(index)
    assert SUITE_NAME in index.read_text()
    assert list((out / "data_docs" / "validations" / SUITE_NAME).rglob("*.html"))
    # Nothing but the two outputs: no GX project dir, no leftover temp dirs.
    assert sorted(p.name for p in out.iterdir()) == ["data_docs", "results.json"]


@pytest.mark.parametrize("case", list(CASES))
def test_defect_fails_its_expectation(gx, reports, tmp_path, case):
    mutate, expected = CASES[case]
    df = reports.copy()
    mutate(df)
    summary = validate_reports(df, QualityParams(), tmp_path)
    assert summary["success"] is False
    assert set(summary["failed"]) == expected  # that expectation, and only it


def test_official_split_is_not_held_to_proportions(gx, reports, tmp_path):
    """An official split far outside the bounds passes; proportions bind only rows split here."""
    df = reports.copy()
    _official_mimic_split(df)
    summary = validate_reports(df, QualityParams(), tmp_path)
    assert summary["success"], summary["failed"]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert not any(r["name"].startswith("expect_column_mean_to_be_between(is_split_") for r in results)
    # Mixed: assigned rows (80/10/10) are held to the bounds, official rows are not counted.
    df = reports.copy()
    df["split_source"] = "assigned"
    df.loc[df.index < 300, "split_source"] = "source"
    df.loc[df.index < 300, "split"] = "train"
    summary = validate_reports(df, QualityParams(), tmp_path / "mixed")
    assert summary["success"], summary["failed"]
    by_name = {r["name"]: r for r in json.loads((tmp_path / "mixed" / "results.json").read_text())["results"]}
    assert by_name["expect_column_mean_to_be_between(is_split_val)"]["observed_value"] == pytest.approx(0.1, abs=0.02)


def test_missing_column_fails_cleanly(gx, reports, tmp_path):
    summary = validate_reports(reports.drop(columns=["phi_spans"]), QualityParams(), tmp_path)
    assert "expect_table_columns_to_match_set" in summary["failed"]
    assert "expect_column_values_to_be_between(phi_spans)" in summary["failed"]


def test_config_from_yaml_lists():
    cfg = QualityParams(split_bounds={"train": [0.5, 0.9], "val": [0.05, 0.3]})
    assert cfg.split_bounds == {"train": (0.5, 0.9), "val": (0.05, 0.3)}


def test_import_is_lazy():
    code = "import sys, components.quality; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
