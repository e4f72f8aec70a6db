"""components.synth: determinism, the MIMIC-CXR layout, the truth table, planted traps, DICOM encoding
and report-image agreement."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from components.chexpert import OBSERVATIONS
from components.ingest.decode import DecodeConfig, decode
from components.params import SynthParams
from components.synth import dicom
from components.synth.generate import generate
from components.synth.phantom import burn_in_text, render_view
from components.synth.traps import TRAPS
from components.synth.truth import Finding, StudyTruth

RECORD_HEADER = ["subject_id", "study_id", "dicom_id", "path"]
STUDY_HEADER = ["subject_id", "study_id", "path"]
METADATA_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                   "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
                   "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
                   "PatientOrientationCodeSequence_CodeMeaning"]
IMAGE_TRAPS = ("truncated_dicom", "corrupt_dicom")  # frontal files that pydicom cannot decode


# ---------------------------------------------------------------- helpers


def _tiny(tmp_path: Path, name: str, **overrides) -> Path:
    values = {"n_studies": 16, "image_size": 96, "seed": 0, "workers": 1,
              "out": str(tmp_path / name), "metrics": str(tmp_path / f"{name}.json")}
    values.update(overrides)
    generate(SynthParams.model_validate(values), progress=False)
    return tmp_path / name


def _files(root: Path, pattern: str) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob(pattern))}


def _truth(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / "truth.parquet")


def _records(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "cxr-record-list.csv")


def _image_path(root: Path, dicom_id: str) -> Path:
    rec = _records(root)
    return root / rec.loc[rec.dicom_id == dicom_id, "path"].item()


def _report_path(root: Path, subject_id: int, study_id: int) -> Path:
    return root / "files" / f"p{str(subject_id)[:2]}" / f"p{subject_id}" / f"s{study_id}.txt"


def _rows(truth: pd.DataFrame, trap: str) -> list:
    rows = [r for r in truth.itertuples(index=False) if r.trap == trap]
    assert rows, f"no study carries the {trap} trap"
    return rows


def _assert_same_archive(a: Path, b: Path) -> None:
    reports_a, reports_b = _files(a, "*.txt"), _files(b, "*.txt")
    assert reports_a and reports_a.keys() == reports_b.keys()
    for rel in reports_a:
        assert reports_a[rel].read_bytes() == reports_b[rel].read_bytes(), rel
    broken = {i for r in _truth(a).itertuples() if r.trap in IMAGE_TRAPS for i in r.dicom_ids[:1]}
    dcm_a, dcm_b = _files(a, "*.dcm"), _files(b, "*.dcm")
    assert dcm_a and dcm_a.keys() == dcm_b.keys()
    decoded = 0
    for rel in dcm_a:
        assert dcm_a[rel].read_bytes() == dcm_b[rel].read_bytes(), rel  # UIDs are seeded too
        if Path(rel).stem not in broken:
            assert np.array_equal(pydicom.dcmread(dcm_a[rel]).pixel_array,
                                  pydicom.dcmread(dcm_b[rel]).pixel_array), rel
            decoded += 1
    assert decoded >= len(dcm_a) - len(broken)
    for table in ("cxr-record-list.csv", "cxr-study-list.csv", "mimic-cxr-2.0.0-metadata.csv"):
        assert (a / table).read_bytes() == (b / table).read_bytes(), table
    pd.testing.assert_frame_equal(_truth(a), _truth(b))
    summary_a, summary_b = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    assert summary_a == summary_b and "seconds" not in summary_a  # timings live in the run log


# ---------------------------------------------------------------- determinism


def test_same_seed_same_archive_whatever_the_workers(tmp_path):
    first = _tiny(tmp_path, "a")
    again = _tiny(tmp_path, "b")
    parallel = _tiny(tmp_path, "c", workers=2)
    _assert_same_archive(first, again)
    _assert_same_archive(first, parallel)


def test_different_seed_different_reports(tmp_path):
    a = {p.read_bytes() for p in _tiny(tmp_path, "a", seed=0).rglob("*.txt")}
    b = {p.read_bytes() for p in _tiny(tmp_path, "b", seed=1).rglob("*.txt")}
    assert len(a & b) <= 2  # a terse normal template may coincide, not the archive


# ---------------------------------------------------------------- layout and tables


def test_mimic_layout(synth_dir, small_params):
    n = small_params.synth.n_studies
    for name in ("cxr-record-list.csv", "cxr-study-list.csv", "mimic-cxr-2.0.0-metadata.csv",
                 "truth.parquet", "summary.json"):
        assert (synth_dir / name).is_file(), name
    records = _records(synth_dir)
    studies = pd.read_csv(synth_dir / "cxr-study-list.csv")
    metadata = pd.read_csv(synth_dir / "mimic-cxr-2.0.0-metadata.csv")
    assert list(records.columns) == RECORD_HEADER
    assert list(studies.columns) == STUDY_HEADER
    assert list(metadata.columns) == METADATA_HEADER
    assert len(studies) == n and studies.study_id.is_unique

    for r in studies.itertuples():
        m = re.fullmatch(r"files/p(\d\d)/p(\d+)/s(\d+)\.txt", r.path)
        assert m and m[1] == str(r.subject_id)[:2] and int(m[2]) == r.subject_id and int(m[3]) == r.study_id
    for r in records.itertuples():
        m = re.fullmatch(r"files/p(\d\d)/p(\d+)/s(\d+)/([0-9a-f-]+)\.dcm", r.path)
        assert m and m[1] == str(r.subject_id)[:2] and int(m[2]) == r.subject_id
        assert int(m[3]) == r.study_id and m[4] == r.dicom_id
        assert (synth_dir / r.path).is_file()
    # Every DICOM on disk is listed; metadata has one row per record with the same ids.
    assert set(_files(synth_dir, "*.dcm")) == set(records.path)
    assert sorted(metadata.dicom_id) == sorted(records.dicom_id)
    assert set(metadata.ViewPosition) <= {"PA", "AP", "LATERAL"}

    summary = json.loads((synth_dir / "summary.json").read_text())
    truth = _truth(synth_dir)
    assert summary["n_studies"] == n and summary["n_images"] == len(records)
    assert summary["traps"] == {t: int((truth.trap == t).sum()) for t in TRAPS}


def test_truth_table(synth_dir, small_params):
    truth = _truth(synth_dir)
    assert len(truth) == small_params.synth.n_studies and truth.study_id.is_unique
    for obs in OBSERVATIONS:
        values = truth[obs]
        assert values.dtype == np.float64
        assert set(values.dropna().unique()) <= {1.0, 0.0, -1.0}, obs
    assert truth[list(OBSERVATIONS)].notna().any(axis=None)
    assert truth["No Finding"].isna().any() and (truth["No Finding"] == 1).any()

    # Every trap kind is planted, each trapped study carries exactly one trap.
    planted = truth.trap.dropna()
    assert set(planted) == set(TRAPS)
    for r in truth.itertuples():
        assert list(r.traps) == ([] if pd.isna(r.trap) else [r.trap])


def test_duplicates_copy_an_untrapped_earlier_study(synth_dir):
    truth = _truth(synth_dir).set_index("study_id")
    for copy in _rows(truth.reset_index(), "duplicate_study"):
        original = truth.loc[int(copy.duplicate_of)]
        assert copy.duplicate_of < copy.study_id
        assert pd.isna(original.trap)
        assert original.subject_id == copy.subject_id
        a = _report_path(synth_dir, copy.subject_id, copy.study_id).read_bytes()
        b = _report_path(synth_dir, original.subject_id, int(copy.duplicate_of)).read_bytes()
        assert a == b
        # The same pixels under a new dicom id.
        assert len(copy.dicom_ids) == len(original.dicom_ids)
        for new, old in zip(copy.dicom_ids, original.dicom_ids):
            assert new != old
            assert np.array_equal(pydicom.dcmread(_image_path(synth_dir, new)).pixel_array,
                                  pydicom.dcmread(_image_path(synth_dir, old)).pixel_array)
    assert truth.duplicate_of.notna().sum() == (truth.trap == "duplicate_study").sum()


# ---------------------------------------------------------------- traps are really in the files


def test_report_traps(synth_dir):
    truth = _truth(synth_dir)
    for r in _rows(truth, "report_phi"):
        text = _report_path(synth_dir, r.subject_id, r.study_id).read_bytes().decode("utf-8")
        phi = json.loads(r.planted_phi)
        assert phi
        for item in phi:
            assert item["value"] and item["value"] in text, item
    for r in _rows(truth, "non_utf8_report"):
        data = _report_path(synth_dir, r.subject_id, r.study_id).read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert data.decode("cp1252")  # otherwise a readable report
    for r in _rows(truth, "missing_report"):
        assert not _report_path(synth_dir, r.subject_id, r.study_id).exists()
        assert r.dicom_ids.size > 0
    # Clean studies: a UTF-8 report without planted PHI.
    clean = truth[truth.trap.isna()].head(5)
    for r in clean.itertuples():
        _report_path(synth_dir, r.subject_id, r.study_id).read_bytes().decode("utf-8")
        assert json.loads(r.planted_phi) == []


def test_missing_image_trap(synth_dir):
    records = _records(synth_dir)
    metadata = pd.read_csv(synth_dir / "mimic-cxr-2.0.0-metadata.csv")
    for r in _rows(_truth(synth_dir), "missing_image"):
        folder = _report_path(synth_dir, r.subject_id, r.study_id).with_suffix("")
        assert not folder.exists()
        assert r.study_id not in set(records.study_id) and r.study_id not in set(metadata.study_id)
        assert r.dicom_ids.size == 0
        assert _report_path(synth_dir, r.subject_id, r.study_id).is_file()


def test_broken_dicom_traps(synth_dir):
    truth = _truth(synth_dir)
    metadata = pd.read_csv(synth_dir / "mimic-cxr-2.0.0-metadata.csv").set_index("dicom_id")
    for r in _rows(truth, "truncated_dicom"):
        path = _image_path(synth_dir, r.dicom_ids[0])
        meta = metadata.loc[r.dicom_ids[0]]
        assert path.read_bytes()[128:132] == b"DICM"  # still starts as DICOM
        assert path.stat().st_size < meta.Rows * meta.Columns * 2  # shorter than its own pixel data
        with pytest.raises(Exception):
            pydicom.dcmread(path).pixel_array
    for r in _rows(truth, "corrupt_dicom"):
        path = _image_path(synth_dir, r.dicom_ids[0])
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(path)
    for r in _rows(truth, "truncated_dicom") + _rows(truth, "corrupt_dicom"):
        for other in r.dicom_ids[1:]:  # only the frontal file is broken
            assert pydicom.dcmread(_image_path(synth_dir, other)).pixel_array.size


def test_header_and_burned_in_traps(synth_dir):
    truth = _truth(synth_dir)
    for r in _rows(truth, "dicom_header_phi"):
        for dicom_id in r.dicom_ids:
            ds = pydicom.dcmread(_image_path(synth_dir, dicom_id))
            for keyword, value in dicom.IDENTIFYING_VALUES.items():
                assert str(ds.get(keyword, "")).strip() == value, keyword
            assert ds.PatientID == str(r.subject_id)
    for r in _rows(truth, "burned_in_annotation"):
        ds = pydicom.dcmread(_image_path(synth_dir, r.dicom_ids[0]))
        assert ds.BurnedInAnnotation == "YES"
    clean = truth[truth.trap.isna()].head(6)
    for r in clean.itertuples():
        for dicom_id in r.dicom_ids:
            ds = pydicom.dcmread(_image_path(synth_dir, dicom_id))
            assert ds.BurnedInAnnotation == "NO"
            assert all(not str(ds.get(k, "")).strip() for k in dicom.IDENTIFYING_VALUES)
            assert ds.PatientID == str(r.subject_id)


def test_burned_in_text_is_visible(synth_dir):
    """The annotation is in the pixels: a line of sharp-edged text across the top of the frontal film,
    where a clean film has only smooth anatomy."""
    truth = _truth(synth_dir)
    cfg = DecodeConfig(resolution=160, frontal_only=False)

    def top_edges(dicom_id):
        px = decode(_image_path(synth_dir, dicom_id), cfg).pixels.astype(int)
        return np.abs(np.diff(px[:16], axis=1)).mean()

    burned = [top_edges(r.dicom_ids[0]) for r in _rows(truth, "burned_in_annotation")]
    clean = [top_edges(r.dicom_ids[0]) for r in truth[truth.trap.isna()].itertuples()]
    assert min(burned) > 2 * max(clean)


def test_burn_in_text_touches_only_the_top_left():
    image = render_view(_effusion_truth(None), "PA", 320, np.random.default_rng(3))
    burned = burn_in_text(image, "HOLLOWAY, JANE  MRN 4829103")
    assert burned.shape == image.shape and burned.dtype == np.float32
    changed = burned != image
    assert changed.any() and (burned >= image).all()
    rows, cols = np.nonzero(changed)
    assert rows.max() < 0.15 * image.shape[0] and cols.min() < 0.1 * image.shape[1]
    assert burned[changed].max() >= image.max()  # the text is as bright as the brightest anatomy


# ---------------------------------------------------------------- DICOM encoding


def _source_image(size=(120, 100)) -> np.ndarray:
    """A [0, 1] image whose right half is brighter, with a gradient and a bright disc."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.2 + 0.3 * (xx >= w // 2) + 0.2 * yy / h
    img[((yy - h * 0.3) ** 2 + (xx - w * 0.25) ** 2) < (h * 0.1) ** 2] = 0.9
    return np.clip(img, 0.0, 1.0)


def _encode_file(image, tmp_path: Path, monochrome1_rate: float, seed: int = 11, view: str = "PA") -> Path:
    ids = dicom.DicomIds(10000001, 50000001, f"test-{monochrome1_rate}-{seed}", view)
    ds = dicom.encode(image, ids, np.random.default_rng(seed), monochrome1_rate=monochrome1_rate,
                      pixel_spacing_mm=0.5)
    path = tmp_path / f"{ids.dicom_id}.dcm"
    dicom.write(ds, path)
    return path


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_encode_round_trip(tmp_path, seed):
    image = _source_image()
    for rate, photometric in ((0.0, "MONOCHROME2"), (1.0, "MONOCHROME1")):
        ds = pydicom.dcmread(_encode_file(image, tmp_path, rate, seed))
        assert ds.PhotometricInterpretation == photometric
        assert (ds.Rows, ds.Columns) == image.shape
        assert ds.BitsStored in (12, 14, 16) and ds.BitsAllocated == 16 and ds.HighBit == ds.BitsStored - 1
        raw = np.frombuffer(ds.PixelData, dtype="<u2")
        assert raw.size == image.size and raw.max() <= 2**ds.BitsStored - 1
        assert np.array_equal(ds.pixel_array.ravel(), raw)
        assert float(ds.RescaleSlope) > 0 and "RescaleIntercept" in ds
        assert float(ds.WindowWidth) > 1 and "WindowCenter" in ds
        assert ds.Modality in ("DX", "CR") and ds.ViewPosition == "PA"
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5]
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
        # The window sits inside the modality range the stored values span.
        modality = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        center = float(ds.WindowCenter)
        assert modality.min() < center < modality.max()


def test_lateral_view_position(tmp_path):
    ds = pydicom.dcmread(_encode_file(_source_image(), tmp_path, 0.0, view="LATERAL"))
    assert ds.ViewPosition == "LL"


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_both_photometric_interpretations_decode_alike(tmp_path, seed):
    truth = StudyTruth(10000001, 50000001, [], [], ["PA"], "full", False)
    for image in (_source_image(), render_view(truth, "PA", 128, np.random.default_rng(seed))):
        cfg = DecodeConfig(resolution=128)
        m2 = decode(_encode_file(image, tmp_path, 0.0, seed), cfg).pixels.astype(int)
        m1 = decode(_encode_file(image, tmp_path, 1.0, seed), cfg).pixels.astype(int)
        assert np.abs(m1 - m2).mean() < 1.0
        # Brightness order survives both encodings.
        if image.shape == (120, 100):
            for out in (m1, m2):
                content = out[:, out.any(axis=0)]
                w = content.shape[1]
                assert content[:, w // 2 + 2:].mean() > content[:, : w // 2 - 2].mean() + 30


# ---------------------------------------------------------------- images agree with the truth


def _effusion_truth(side: str | None) -> StudyTruth:
    findings = [Finding("Pleural Effusion", laterality=side, severity="large")] if side else []
    return StudyTruth(10000001, 50000001, findings, [], ["PA"], "full", False)


@pytest.mark.parametrize("side", ["left", "right"])
def test_effusion_appears_on_its_side(side):
    without = render_view(_effusion_truth(None), "PA", 128, np.random.default_rng(7))
    with_ = render_view(_effusion_truth(side), "PA", 128, np.random.default_rng(7))
    assert with_.shape == without.shape
    diff = with_.astype(np.float64) - without
    w = diff.shape[1]
    image_right, image_left = np.abs(diff[:, w // 2:]).sum(), np.abs(diff[:, : w // 2]).sum()
    assert image_right + image_left > 0  # the finding is drawn at all
    # The patient's left is displayed on the image right.
    near, far = (image_right, image_left) if side == "left" else (image_left, image_right)
    assert near > 0.9 * (near + far)
    # Fluid attenuates: the lower half of that side is brighter.
    half = diff[diff.shape[0] // 2:, w // 2:] if side == "left" else diff[diff.shape[0] // 2:, : w // 2]
    assert half.mean() > 0.01
