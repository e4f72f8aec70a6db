"""Every published layout (tests/real_layouts.py) through ingest and clean, as a new user would run it.

Each layout drops a study under a source split (a lateral-only study under frontal_only), which used
to crash ingest after all decoding; views come from DICOM headers or the release's own tables;
every record is accounted for at both stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from components.ingest.audit import conservation
from components.ingest.run import ingest
from components.params import CleanParams, IngestParams, QualityParams
from components.reports.clean import clean
from components.stages import clean as clean_stage
from components.stages import ingest as ingest_stage
from tests import real_layouts as L

def _clean_check(name: str, clean_dir: Path, ingest_dir: Path | None = None) -> dict:
    """One of the clean stage's asset checks on an output (absolute paths: the project root is unused)."""
    params = SimpleNamespace(clean=SimpleNamespace(out=str(clean_dir), input=str(ingest_dir)))
    return getattr(clean_stage, f"check_clean_{name}")(params, Path("/"))


# A handful of subjects cannot hold split proportions (tests/test_quality.py covers those bounds).
WIDE = QualityParams(split_bounds={"train": (0.0, 1.0), "val": (0.0, 1.0), "test": (0.0, 1.0)})


def _build(name: str, tmp: Path) -> dict:
    """Ingest params for one layout, and what must come out of it."""
    if name == "mimic-dicom":
        return dict(source="mimic", input=L.mimic_dicom_release(tmp / "mimic-cxr"), out_studies=5,
                    dropped={"50771383": "no_frontal_image"}, split_source="assigned")
    if name == "mimic-jpg+reports-zip":
        L.mimic_reports_zip(tmp / "mimic-cxr" / "mimic-cxr-reports.zip")
        return dict(source="mimic", input=tmp / "mimic-cxr", image_root=L.mimic_jpg_release(tmp / "mimic-cxr-jpg"),
                    out_studies=5, dropped={"50771383": "no_frontal_image"}, split_source="source")
    if name.startswith("chexpert-plus:"):
        layout = name.split(":", 1)[1]
        return dict(source="chexpert-plus", input=L.chexpert_plus(tmp / "chexpertplus", layout), out_studies=4,
                    dropped={"patient00003/study1": "no_frontal_image"}, split_source="source")
    if name == "openi":
        return dict(source="openi", input=L.openi(tmp / "openi"), out_studies=3,
                    dropped={"CXR3": "no_frontal_image"}, split_source="assigned")
    if name == "openi-text-only":
        return dict(source="openi", input=L.openi(tmp / "openi", images=False), require_images=False,
                    out_studies=4, dropped={}, split_source="assigned")
    if name == "manifest":
        return dict(source="manifest", input=L.manifest(tmp / "export"), out_studies=2,
                    dropped={"s3": "no_frontal_image"}, split_source="source")
    raise KeyError(name)


LAYOUTS = ["mimic-dicom", "mimic-jpg+reports-zip", *(f"chexpert-plus:{x}" for x in L.CHEXPERT_LAYOUTS),
           "openi", "openi-text-only", "manifest"]


def _run(name: str, tmp: Path, **clean_changes) -> dict:
    spec = _build(name, tmp)
    cfg = IngestParams(source=spec["source"], input=str(spec["input"]), out=str(tmp / "ingested"),
                       metrics=str(tmp / "m" / "ingest.json"), resolution=32, workers=1,
                       image_root=str(spec["image_root"]) if spec.get("image_root") else None,
                       require_images=spec.get("require_images", True))
    ingest_summary = ingest(cfg, progress=False)
    ccfg = CleanParams(input=cfg.out, out=str(tmp / "clean"), metrics=str(tmp / "m" / "clean.json"),
                       quality=WIDE, **clean_changes)
    return {"spec": spec, "ingest": ingest_summary, "clean": clean(ccfg, progress=False), "dir": tmp}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each layout ingested and cleaned once for the module, on first use."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            done[name] = _run(name, tmp_path_factory.mktemp(name.replace(":", "-").replace("/", "-")))
        return done[name]
    return get


@pytest.fixture(params=LAYOUTS)
def run(request, runs) -> dict:
    return runs(request.param)


def test_every_layout_ingests_and_cleans_with_every_record_accounted_for(run):
    d, spec = run["dir"], run["spec"]
    assert run["ingest"]["conservation_ok"] and conservation(d / "ingested")["ok"]
    studies = pd.read_parquet(d / "ingested" / "studies.parquet")
    assert len(studies) == spec["out_studies"], run["ingest"]["studies"]
    q = pd.read_parquet(d / "ingested" / "quarantine.parquet")
    assert dict(q.loc[q["level"] == "study", ["record_id", "reason"]].values) == spec["dropped"]
    assert set(studies["split_source"]) == {spec["split_source"]}
    # clean: nothing lost, the Great Expectations suite and the PHI gate pass
    assert run["clean"]["conservation_ok"] and _clean_check("conservation", d / "clean", d / "ingested")["passed"]
    assert run["clean"]["quality"]["success"], run["clean"]["quality"]["failed"]
    assert _clean_check("quality_suite", d / "clean")["passed"] and _clean_check("phi_free", d / "clean")["passed"]
    reports = pd.read_parquet(d / "clean" / "reports.parquet")
    assert len(reports) == spec["out_studies"] and reports["text"].str.len().gt(20).all()
    assert reports["findings"].notna().all() and reports["impression"].notna().all()


def test_kept_images_are_frontal_from_headers_or_tables(run):
    images = pd.read_parquet(run["dir"] / "ingested" / "images.parquet")
    q = pd.read_parquet(run["dir"] / "ingested" / "quarantine.parquet")
    if run["spec"].get("require_images") is False:
        assert images.empty and set(q["reason"]) == {"image_file_missing"}
        return
    assert set(images["view"]) <= {"PA", "AP", "AP AXIAL", "PA LLD"}
    assert (q["reason"] == "view_not_frontal").sum() >= 1


def test_mimic_views_from_dicom_headers_without_metadata_csv(runs):
    out = runs("mimic-dicom")
    tmp_path = out["dir"]
    images = pd.read_parquet(tmp_path / "ingested" / "images.parquet").set_index("image_id")["view"]
    assert images["2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"] == "AP AXIAL"  # a frontal projection
    assert images["096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"] == "PA LLD"  # decubitus: frontal
    assert images["0cbfc2ba-4c742af0-52c354a0-450c360d-9326eb92"] == "AP"  # blank ViewPosition, code sequence
    q = pd.read_parquet(tmp_path / "ingested" / "quarantine.parquet").set_index("record_id")
    # blank ViewPosition whose ViewCodeSequence says lateral: not let into frontal-only output
    assert q.loc["b79e55c3-735ce5ac-64412506-cdc9ea79-f1af521f", "reason"] == "view_not_frontal"
    assert q.loc["0c4eb1e1-b801903c-bcebe8a4-3da9cd3c-3b94a27c", "reason"] == "view_not_frontal"
    assert out["ingest"]["images"]["by_reason"] == {"view_not_frontal": 3}


def test_official_split_kept_and_reference_labels_stored(runs):
    out = runs("mimic-jpg+reports-zip")
    tmp_path = out["dir"]
    studies = pd.read_parquet(tmp_path / "ingested" / "studies.parquet").set_index("study_id")
    assert studies.loc["57375967", "split"] == "val" and studies.loc["51178377", "split"] == "test"
    assert studies.loc["51178377", "reference_source"] == "mimic-cxr-2.1.0-test-set-labeled"
    assert studies.loc["53189527", "reference_source"] == "mimic-cxr-2.0.0-chexpert"
    assert studies.loc["53189527", "reference_Pleural Effusion"] == 1.0
    assert pd.isna(studies.loc["53189527", "reference_Edema"])  # blank: not mentioned
    assert "No acute cardiopulmonary process" in studies.loc["50414267", "report"]  # read from the zip
    assert out["ingest"]["references"]["files"] == {
        "mimic-cxr-2.1.0-test-set-labeled": 2, "mimic-cxr-2.0.0-chexpert": 6, "mimic-cxr-2.0.0-negbio": 6}
    agreement = out["clean"]["reference_agreement"]
    assert set(agreement) == {"mimic-cxr-2.1.0-test-set-labeled", "mimic-cxr-2.0.0-chexpert"}
    effusion = agreement["mimic-cxr-2.0.0-chexpert"]["observations"]["Pleural Effusion"]
    assert effusion["support"] == 1 and effusion["recall"] == 1.0  # "Moderate right pleural effusion"
    metrics = json.loads((tmp_path / "m" / "clean.json").read_text())
    chexpert = agreement["mimic-cxr-2.0.0-chexpert"]  # DVC metrics: the headline (macro) figure only
    assert metrics["reference_f1"]["mimic-cxr-2.0.0-chexpert"] == {"macro": chexpert["macro_f1"],
                                                                   "studies": chexpert["studies"]}
    # the radiologists' "Airspace Opacity" column is CheXpert's Lung Opacity
    reports = pd.read_parquet(tmp_path / "clean" / "reports.parquet")
    assert "reference_Lung Opacity" in reports and reports["reference_source"].notna().all()


def test_chexbert_labels_are_the_chexpert_plus_reference(runs):
    out = runs("chexpert-plus:PNG/PNG")
    tmp_path = out["dir"]
    studies = pd.read_parquet(tmp_path / "ingested" / "studies.parquet").set_index("study_id")
    assert set(studies["reference_source"]) == {"chexbert_labels/impression_fixed"}
    assert studies.loc["patient00002/study1", "reference_Cardiomegaly"] == 1.0
    assert studies.loc["patient64541/study1", "split"] == "val"
    assert "chexbert_labels/impression_fixed" in out["clean"]["reference_agreement"]


def test_text_only_report_tree_becomes_a_clean_report_table(runs):
    out = runs("openi-text-only")
    tmp_path = out["dir"]
    reports = pd.read_parquet(tmp_path / "clean" / "reports.parquet")
    assert sorted(reports["study_id"]) == ["CXR1", "CXR2", "CXR3", "CXR4"]
    assert reports["image_ids"].map(len).eq(0).all()
    assert out["ingest"]["studies"]["text_only"] == 4 and out["ingest"]["images"]["quarantined"] == 6
    assert reports.set_index("study_id").loc["CXR3", "Pleural Effusion"] == 1.0


def test_text_only_tree_is_refused_study_by_study_when_images_are_required(tmp_path):
    root = L.openi(tmp_path / "openi", images=False)
    cfg = IngestParams(source="openi", input=str(root), out=str(tmp_path / "i"), metrics=str(tmp_path / "m.json"),
                       resolution=32, workers=1)
    summary = ingest(cfg, progress=False)
    assert summary["studies"]["out"] == 0 and summary["studies"]["by_reason"] == {"image_file_missing": 4}


def test_clock_times_are_not_phi_by_default_but_can_be(runs, tmp_path):
    default = runs("mimic-dicom")  # the "discussed with Dr. ___ at 10:15" report is kept
    assert "57375967" in set(pd.read_parquet(default["dir"] / "clean" / "reports.parquet")["study_id"])
    cfg = CleanParams(input=str(default["dir"] / "ingested"), out=str(tmp_path / "clean"),
                      metrics=str(tmp_path / "m.json"), quality=WIDE, phi_kinds=["date", "time", "person_name"])
    summary = clean(cfg, progress=False)
    q = pd.read_parquet(tmp_path / "clean" / "quarantine.parquet")
    assert dict(q[["study_id", "reason"]].values) == {"57375967": "report_phi"}
    assert q["detail"].tolist() == ["time=1"]
    assert summary["phi"]["kinds_checked"] == ["date", "time", "person_name"]
    assert _clean_check("phi_free", tmp_path / "clean")["passed"]


def test_unknown_view_policy(tmp_path):
    root = L.manifest(tmp_path / "export")
    rows = pd.read_csv(root / "manifest.csv")
    rows.loc[0, "view"] = None  # s1: no view in the export
    rows.to_csv(root / "manifest.csv", index=False)
    base = dict(source="manifest", input=str(root), metrics=str(tmp_path / "m.json"), resolution=32, workers=1)
    kept = ingest(IngestParams(**base, out=str(tmp_path / "keep")), progress=False)
    assert kept["studies"]["out"] == 2
    strict = ingest(IngestParams(**base, out=str(tmp_path / "q"), unknown_view="quarantine"), progress=False)
    assert strict["images"]["by_reason"]["view_unknown"] == 1 and strict["studies"]["out"] == 1
    assert strict["conservation_ok"]


def test_agreement_reaches_dagster_metadata(runs):
    out = runs("mimic-jpg+reports-zip")
    params = SimpleNamespace(clean=SimpleNamespace(out=str(out["dir"] / "clean")),
                             ingest=SimpleNamespace(out=str(out["dir"] / "ingested")))
    clean_meta = clean_stage.metadata(params, out["clean"])
    ingest_meta = ingest_stage.metadata(params, out["ingest"])
    table = clean_meta["agreement_mimic_cxr_2_0_0_chexpert"]["raw_value"]
    assert "| Pleural Effusion |" in table and "precision" in table
    assert clean_meta["agreement_mimic_cxr_2_0_0_chexpert_macro_f1"] == \
        out["clean"]["reference_agreement"]["mimic-cxr-2.0.0-chexpert"]["macro_f1"]
    assert "mimic-cxr-2.1.0-test-set-labeled" in ingest_meta["reference_labels"]["raw_value"]
    assert ingest_meta["text_only_studies"] == 0


def test_partial_download_under_the_official_split(tmp_path):
    """Images missing from disk for a study the official split lists (a partial MIMIC-CXR-JPG download)."""
    L.mimic_reports_zip(tmp_path / "mimic-cxr" / "mimic-cxr-reports.zip")
    jpg = L.mimic_jpg_release(tmp_path / "mimic-cxr-jpg")
    for path in (jpg / "files" / "p10" / "p10000980").rglob("*.jpg"):
        path.unlink()
    cfg = IngestParams(source="mimic", input=str(tmp_path / "mimic-cxr"), image_root=str(jpg),
                       out=str(tmp_path / "i"), metrics=str(tmp_path / "m.json"), resolution=32, workers=1)
    summary = ingest(cfg, progress=False)
    assert summary["conservation_ok"] and summary["studies"]["out"] == 4
    # the JPG tree has no folder for the study any more; its report (in the zip) is all that is left
    assert summary["studies"]["by_reason"] == {"image_missing": 1, "no_frontal_image": 1}
