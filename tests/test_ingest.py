"""Ingest end to end on the session's synthetic archive, plus a manifest source with real files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from components.ingest.audit import conservation
from components.ingest.shards import load_image
from components.synth.traps import EXPECTED_OUTCOME, TRAPS


@pytest.fixture(scope="module")
def outputs(ingest_dir, synth_dir):
    return {
        "studies": pd.read_parquet(ingest_dir / "studies.parquet"),
        "images": pd.read_parquet(ingest_dir / "images.parquet"),
        "quarantine": pd.read_parquet(ingest_dir / "quarantine.parquet"),
        "summary": json.loads((ingest_dir / "summary.json").read_text()),
        "truth": pd.read_parquet(synth_dir / "truth.parquet").assign(
            study_id=lambda t: t["study_id"].astype(str)),
    }


def test_every_planted_trap_ends_where_it_should(outputs):
    truth, quarantine, studies = outputs["truth"], outputs["quarantine"], outputs["studies"]
    reason_of = quarantine[quarantine["level"] == "study"].set_index("study_id")["reason"]
    planted = truth.dropna(subset=["trap"])
    assert set(planted["trap"]) == set(TRAPS)
    for _, row in planted.iterrows():
        stage, reason = EXPECTED_OUTCOME[row["trap"]]
        if stage == "ingest":
            assert reason_of.get(row["study_id"]) == reason, row["trap"]
        else:  # caught later (text PHI): passes ingest untouched
            assert row["study_id"] in set(studies["study_id"]), row["trap"]
    clean = set(truth.loc[truth["trap"].isna(), "study_id"])
    assert clean <= set(studies["study_id"]), "a clean study was quarantined"
    assert outputs["summary"]["traps"]["all_accounted"]


def test_conservation_recounted_from_tables(outputs, ingest_dir):
    result = conservation(ingest_dir)
    assert result["ok"], result
    s = outputs["summary"]
    assert s["studies"]["in"] == len(outputs["truth"])
    assert s["studies"]["in"] == len(outputs["studies"]) + (outputs["quarantine"]["level"] == "study").sum()
    assert s["images"]["in"] == len(outputs["images"]) + (outputs["quarantine"]["level"] == "image").sum()


def test_patient_level_split(outputs):
    studies = outputs["studies"]
    assert (studies.groupby("subject_id")["split"].nunique() == 1).all()
    assert set(studies["split"]) <= {"train", "val", "test"}
    assert (outputs["images"].merge(studies[["study_id", "split"]], on="study_id", suffixes=("", "_s"))
            .pipe(lambda m: (m["split"] == m["split_s"]).all()))


def test_shards_hold_frontal_images_matching_the_index(outputs, ingest_dir, small_params):
    images, studies = outputs["images"], outputs["studies"]
    r = small_params.ingest.resolution
    assert set(images["view"]) <= {"PA", "AP"}
    assert sorted(images["image_id"]) == sorted(i for ids in studies["image_ids"] for i in ids)
    for _, row in images.head(5).iterrows():
        pixels = load_image(ingest_dir, row["shard"], row["index"])
        assert pixels.shape == (r, r) and pixels.dtype == np.uint8 and pixels.max() > 200
    total = sum(np.load(p, mmap_mode="r").shape[0] for p in (ingest_dir / "images").glob("shard-*.npy"))
    assert total == len(images)
    assert len(list((ingest_dir / "images").glob("*.npy"))) == -(-len(images) // small_params.ingest.shard_size)


def test_reports_and_audit_fields_carried(outputs, synth_dir):
    studies = outputs["studies"].set_index("study_id")
    truth = outputs["truth"].set_index("study_id")
    sid = studies.index[0]
    subject = truth.loc[sid, "subject_id"]
    report_file = synth_dir / "files" / f"p{str(subject)[:2]}" / f"p{subject}" / f"s{sid}.txt"
    assert studies.loc[sid, "report"] == report_file.read_text()
    assert not studies["burned_in_annotation"].any()
    assert all(len(a) == 0 for a in studies["dicom_identifying_attributes"])


def test_flag_policy_keeps_dicom_phi_studies_with_audit_fields(small_params, synth_dir, tmp_path):
    from components.ingest.run import ingest

    cfg = small_params.ingest.model_copy(update={"dicom_phi": "flag", "out": str(tmp_path / "out"),
                                                 "metrics": str(tmp_path / "m.json")})
    summary = ingest(cfg, progress=False)
    studies = pd.read_parquet(tmp_path / "out" / "studies.parquet")
    assert studies["burned_in_annotation"].sum() == summary["traps"]["by_trap"]["burned_in_annotation"]["planted"]
    flagged = studies[studies["dicom_identifying_attributes"].map(len) > 0]
    assert len(flagged) == summary["traps"]["by_trap"]["dicom_header_phi"]["planted"]
    assert "PatientName" in flagged["dicom_identifying_attributes"].iloc[0]
    assert not summary["traps"]["all_accounted"]  # flagging is not where these traps should end


def test_parallel_decoding_gives_identical_output(small_params, ingest_dir, tmp_path):
    from components.ingest.run import ingest

    cfg = small_params.ingest.model_copy(update={"workers": 2, "out": str(tmp_path / "out"),
                                                 "metrics": str(tmp_path / "m.json")})
    ingest(cfg, progress=False)
    for table in ("studies", "images", "quarantine"):
        pd.testing.assert_frame_equal(pd.read_parquet(ingest_dir / f"{table}.parquet"),
                                      pd.read_parquet(tmp_path / "out" / f"{table}.parquet"))
    for shard in (ingest_dir / "images").glob("*.npy"):
        assert np.array_equal(np.load(shard), np.load(tmp_path / "out" / "images" / shard.name))


def test_manifest_source_with_png_jpeg_and_dicom(tmp_path, small_params, synth_dir):
    """A generic manifest mixing file types, a lateral view, a broken file and a missing one."""
    from components.ingest.run import ingest

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    Image.fromarray(rng.integers(0, 255, (80, 60), dtype=np.uint8)).save(tmp_path / "img" / "a.png")
    Image.fromarray((rng.random((70, 90)) * 65535).astype(np.uint16)).save(tmp_path / "img" / "b.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "img" / "c.jpg")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG not really")
    dcm = next(p for p in sorted(synth_dir.rglob("*.dcm")) if _readable_frontal(p))
    rows = [
        ("s1", "p1", "Small left effusion.", "img/a.png", "PA"),
        ("s1", "p1", "Small left effusion.", "img/c.jpg", "LATERAL"),
        ("s2", "p2", "No pneumothorax.", "img/b.png", "AP"),
        ("s3", pydicom.dcmread(dcm).PatientID, "Clear lungs.", str(dcm), ""),  # view from the header
        ("s7", "p9", "Clear lungs.", str(dcm), ""),  # PatientID is not this subject's pseudonym
        ("s4", "p3", "Cardiomegaly.", "img/broken.png", "PA"),
        ("s5", "p4", "Edema.", "img/missing.png", "PA"),
        ("s6", "p5", "", "img/a.png", "PA"),
    ]
    pd.DataFrame(rows, columns=["study_id", "subject_id", "report", "image_path", "view"]).to_csv(
        tmp_path / "manifest.csv", index=False)
    cfg = small_params.ingest.model_copy(update={
        "source": "manifest", "input": str(tmp_path / "manifest.csv"), "out": str(tmp_path / "out"),
        "metrics": str(tmp_path / "m.json")})
    summary = ingest(cfg, progress=False)
    studies = pd.read_parquet(tmp_path / "out" / "studies.parquet")
    assert sorted(studies["study_id"]) == ["s1", "s2", "s3"]
    q = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    reasons = dict(zip(q["record_id"], q["reason"]))
    assert reasons["s4"] == "image_unreadable" and reasons["s5"] == "image_file_missing"
    assert reasons["s6"] in ("report_missing", "report_empty")
    assert reasons["s7"] == "dicom_identifying_header"
    assert (q["reason"] == "view_not_frontal").sum() == 1
    assert summary["conservation_ok"] and summary["studies"] == {
        "in": 7, "out": 3, "quarantined": 4, "by_reason": summary["studies"]["by_reason"], "text_only": 0}
    assert "traps" not in summary  # only synthetic sources have a truth table


def _readable_frontal(path) -> bool:
    try:
        ds = pydicom.dcmread(path)
        return ds.ViewPosition in ("PA", "AP") and not ds.get("PatientName") and ds.BurnedInAnnotation == "NO" \
            and len(ds.PixelData) == ds.Rows * ds.Columns * 2
    except Exception:  # noqa: BLE001 - planted corrupt files are simply skipped here
        return False
