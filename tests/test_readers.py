"""Dataset readers against small fixtures written in each source's real on-disk schema."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from components.ingest.readers import READERS, read_source
from components.ingest.records import REASONS

# ---------------------------------------------------------------- fixture helpers


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _csv_bytes(header: list[str], rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    data = _csv_bytes(header, rows)
    return _write(path, gzip.compress(data) if path.suffix == ".gz" else data)


DICOM = b"\0" * 128 + b"DICM"  # readers never decode, so a preamble is enough
METADATA_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                   "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
                   "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
                   "PatientOrientationCodeSequence_CodeMeaning"]
SPLIT_HEADER = ["dicom_id", "study_id", "subject_id", "split"]


def _meta_row(dicom_id, subject, study, view, meaning):
    return [dicom_id, subject, study, "CHEST (PA AND LAT)", view, 3056, 2544, 21800506, 213014.531,
            "CHEST (PA AND LAT)", meaning, "Erect"]


def _report(study: str) -> str:
    return f"                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n" \
           f" FINDINGS: No focal consolidation ({study}).\n\n IMPRESSION: No acute process.\n"


@pytest.fixture
def mimic_root(tmp_path: Path) -> Path:
    """MIMIC-CXR 2.0.0 (DICOM release): gzipped record and study lists, no -JPG CSVs (views are in
    the DICOM headers, which the decoder reads; there is no official split in this release)."""
    root = tmp_path / "mimic-cxr"
    f = root / "files"
    # s50414267: two images (PA + lateral), report beside the images.
    _write(f / "p10/p10000032/s50414267.txt", _report("a"))
    _write(f / "p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.dcm", DICOM)
    _write(f / "p10/p10000032/s50414267/174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962.dcm", DICOM)
    # s53189527: report only in the separate mimic-cxr-reports tree.
    _write(root / "mimic-cxr-reports/files/p10/p10000032/s53189527.txt", _report("b"))
    _write(f / "p10/p10000032/s53189527/2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab.dcm", DICOM)
    # s52222222: report bytes are Latin-1, not UTF-8.
    _write(f / "p11/p11000011/s52222222.txt", b"FINDINGS: caf\xe9 normal.\n")
    _write(f / "p11/p11000011/s52222222/d-bad-utf8.dcm", DICOM)
    # s53333333: images but no report anywhere.
    _write(f / "p11/p11000011/s53333333/d-no-report.dcm", DICOM)
    # s54444444: listed in the record list, image file absent from disk.
    _write(f / "p11/p11000011/s54444444.txt", _report("d"))
    # s55555555: report only, listed in the study list (no image rows).
    _write(f / "p11/p11000011/s55555555.txt", _report("e"))
    # s50414267 listed again under another subject: a duplicate record.
    _write(f / "p12/p12000012/s50414267/d-dup.dcm", DICOM)
    _write(f / "p12/p12000012/s50414267.txt", _report("dup"))

    a, b = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"
    c = "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"
    records = [
        [10000032, 50414267, a, f"files/p10/p10000032/s50414267/{a}.dcm"],
        [10000032, 50414267, b, f"files/p10/p10000032/s50414267/{b}.dcm"],
        [10000032, 50414267, a, f"files/p10/p10000032/s50414267/{a}.dcm"],  # repeated row
        [10000032, 53189527, c, f"files/p10/p10000032/s53189527/{c}.dcm"],
        [11000011, 52222222, "d-bad-utf8", "files/p11/p11000011/s52222222/d-bad-utf8.dcm"],
        [11000011, 53333333, "d-no-report", "files/p11/p11000011/s53333333/d-no-report.dcm"],
        [11000011, 54444444, "d-gone", "files/p11/p11000011/s54444444/d-gone.dcm"],
        [12000012, 50414267, "d-dup", "files/p12/p12000012/s50414267/d-dup.dcm"],
        ["", "", "", ""],  # an unusable row
    ]
    _write_csv(root / "cxr-record-list.csv.gz", ["subject_id", "study_id", "dicom_id", "path"], records)
    _write_csv(root / "cxr-study-list.csv.gz", ["subject_id", "study_id", "path"],
               [[10000032, 50414267, "files/p10/p10000032/s50414267.txt"],
                [11000011, 55555555, "files/p11/p11000011/s55555555.txt"]])
    return root


@pytest.fixture
def mimic_jpg_root(tmp_path: Path) -> Path:
    """MIMIC-CXR-JPG 2.0.0: no record list, gzipped metadata/split, reports in mimic-cxr-reports."""
    root = tmp_path / "mimic-cxr-jpg"
    f = root / "files"
    _write(f / "p10/p10000032/s50414267/02aa804e.jpg", b"\xff\xd8\xff")
    _write(f / "p10/p10000032/s50414267/174413ec.jpg", b"\xff\xd8\xff")
    _write(root / "mimic-cxr-reports/files/p10/p10000032/s50414267.txt", _report("a"))
    _write(root / "mimic-cxr-reports/files/p10/p10000032/s56699142.txt", _report("no images"))
    _write(f / "p19/p19999987/s58971208/ea030e7a.jpg", b"\xff\xd8\xff")  # no report
    _write_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_HEADER, [
        _meta_row("02aa804e", 10000032, 50414267, "PA", "postero-anterior"),
        _meta_row("174413ec", 10000032, 50414267, "LL", "left lateral")])
    _write_csv(root / "mimic-cxr-2.0.0-split.csv.gz", SPLIT_HEADER,
               [["02aa804e", 50414267, 10000032, "validate"], ["ea030e7a", 58971208, 19999987, "test"]])
    return root


CHEXPERT_HEADER = [
    "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id",
    "patient_report_date_order", "report", "section_narrative", "section_clinical_history",
    "section_history", "section_comparison", "section_technique", "section_procedure_comments",
    "section_findings", "section_impression", "section_end_of_impression", "section_summary",
    "section_accession_number", "age", "sex", "race", "ethnicity", "interpreter_needed",
    "insurance_type", "recent_bmi", "deceased", "split"]


def _chexpert_row(img, frontal, ap_pa, patient, report, findings, impression, split, order=1):
    values = dict.fromkeys(CHEXPERT_HEADER, "")
    values.update(path_to_image=img, path_to_dcm=img.replace(".jpg", ".dcm"), frontal_lateral=frontal,
                  ap_pa=ap_pa, deid_patient_id=patient, patient_report_date_order=order,
                  report=report, section_narrative="Chest 1 View" if report else "",
                  section_findings=findings, section_impression=impression,
                  section_accession_number="9959089" if report else "", age=62.0, sex="Female",
                  race="White", deceased="No", split=split)
    return [values[c] for c in CHEXPERT_HEADER]


@pytest.fixture
def chexpert_root(tmp_path: Path) -> Path:
    root = tmp_path / "chexpert-plus"
    rep1 = "NARRATIVE:\nChest 1 View\n\nFINDINGS:\nNo pneumothorax.\n\nIMPRESSION:\nNormal."
    rows = [
        _chexpert_row("train/patient00001/study1/view1_frontal.jpg", "Frontal", "PA", "patient00001",
                      rep1, "No pneumothorax.", "Normal.", "train"),
        _chexpert_row("train/patient00001/study1/view2_lateral.jpg", "Lateral", "", "patient00001",
                      rep1, "No pneumothorax.", "Normal.", "train"),
        _chexpert_row("train/patient00001/study1/view2_lateral.jpg", "Lateral", "", "patient00001",
                      rep1, "No pneumothorax.", "Normal.", "train"),  # repeated row
        _chexpert_row("valid/patient00002/study10/view1_frontal.jpg", "Frontal", "AP", "patient00002",
                      "IMPRESSION:\nCardiomegaly.", "", "Cardiomegaly.", "valid"),
        _chexpert_row("train/patient00002/study2/view1_frontal.jpg", "Frontal", "AP", "patient00002",
                      "", "", "", "train"),  # no report
    ]
    data = _csv_bytes(CHEXPERT_HEADER, rows)
    bad = _csv_bytes(CHEXPERT_HEADER, [_chexpert_row(
        "train/patient00003/study1/view1_frontal.jpg", "Frontal", "PA", "patient00003",
        "REPORT_PLACEHOLDER", "", "", "train")]).split(b"\n", 1)[1]
    _write(root / "df_chexpert_plus_240401.csv", data + bad.replace(b"REPORT_PLACEHOLDER", b"caf\xe9"))
    # The DICOM and PNG releases are separate archives that unpack to DICOM/ and PNG/.
    _write(root / "DICOM/train/patient00001/study1/view1_frontal.dcm", DICOM)
    _write(root / "PNG/train/patient00001/study1/view1_frontal.png", b"\x89PNG")
    _write(root / "PNG/train/patient00001/study1/view2_lateral.png", b"\x89PNG")  # PNG release only
    return root


def _openi_xml(uid: str, sections: dict[str, str], images: list[str], major: list[str]) -> str:
    abstract = "".join(f'\n            <AbstractText Label="{k}">{v}</AbstractText>' if v else
                       f'\n            <AbstractText Label="{k}"/>' for k, v in sections.items())
    mesh = "".join(f"<major>{m}</major>" for m in major) + "<automatic>Opacity/lung</automatic>"
    parents = "".join(f"""
   <parentImage id="{i}">
      <figureId>F{n}</figureId>
      <caption>Xray Chest PA and Lateral</caption>
      <panel type="single">
         <url>/hadoop/storage/radiology/extract/{i}.jpg</url>
         <imgModality>7</imgModality>
      </panel>
   </parentImage>""" for n, i in enumerate(images, start=1))
    return f"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="{uid}"/>
   <pmcId id="{uid[3:]}"/>
   <docSource>CXR</docSource>
   <IUXRId id="{uid[3:]}"/>
   <licenseType>open-access</licenseType>
   <publisher>Indiana University</publisher>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>
         <Abstract>{abstract}
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>{mesh}</MeSH>{parents}
</eCitation>
"""


@pytest.fixture
def openi_root(tmp_path: Path) -> Path:
    root = tmp_path / "openi"
    xml = root / "ecgen-radiology"
    _write(xml / "1.xml", _openi_xml("CXR1", {
        "COMPARISON": "None.", "INDICATION": "Positive TB test",
        "FINDINGS": "The cardiac silhouette and mediastinum size are within normal limits.",
        "IMPRESSION": "Normal chest x-XXXX."}, ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"], ["normal"]))
    _write(xml / "10.xml", _openi_xml("CXR10", {
        "COMPARISON": "", "INDICATION": "", "FINDINGS": "Borderline cardiomegaly.",
        "IMPRESSION": "No acute findings."}, ["CXR10_IM-0002-1001"],
        ["Cardiomegaly/borderline", "Pulmonary Artery/enlarged"]))
    _write(xml / "2.xml", _openi_xml("CXR2", {"FINDINGS": "Clear lungs."}, ["CXR2_IM-0652-1001"], []))
    _write(xml / "99.xml", '<?xml version="1.0"?>\n<eCitation>\n   <uId id="CXR99"/>\n   <MeSH>\n</eCitation>\n')
    _write(root / "NLMCXR_png/CXR1_1_IM-0001-3001.png", b"\x89PNG")  # 4001 is missing on disk
    _write(root / "images/CXR10_IM-0002-1001.png", b"\x89PNG")
    _write(root / "CXR2_IM-0652-1001.png", b"\x89PNG")
    return root


MANIFEST_HEADER = ["study_id", "subject_id", "report", "image_path", "split", "view"]


@pytest.fixture
def manifest_root(tmp_path: Path) -> Path:
    root = tmp_path / "manifest"
    _write_csv(root / "manifest.csv", MANIFEST_HEADER, [
        ["s2", "p1", "FINDINGS: clear.", "img/s2_a.png", "validate", "pa"],
        ["s2", "p1", "FINDINGS: clear.", "img/s2_b.png", "validate", "lateral"],
        ["s10", "p2", "IMPRESSION: effusion.", "img/s10.dcm", "test", ""],
        ["", "p3", "orphan", "img/x.png", "train", ""],
        ["s3", "p4", "", "img/s3.png", "train", "AP"],
    ])
    return root


# ---------------------------------------------------------------- MIMIC-CXR


def _by_id(studies):
    out: dict[str, list] = {}
    for s in studies:
        out.setdefault(s.study_id, []).append(s)
    return out


def test_mimic_record_list(mimic_root: Path) -> None:
    studies = list(read_source("mimic", mimic_root))
    ids = [s.study_id for s in studies]
    assert ids == ["50414267", "50414267", "52222222", "53189527", "53333333", "54444444",
                   "55555555", "row-9"]
    by = _by_id(studies)

    first, dup = by["50414267"]
    assert (first.subject_id, first.error, first.split, first.sections) == ("10000032", None, None, {})
    assert "No focal consolidation (a)" in first.report
    # no metadata CSV in the DICOM release: the view is left to the decoder, which reads the header
    assert [(im.image_id[:8], im.view, im.error) for im in first.images] == [
        ("02aa804e", None, None), ("02aa804e", None, "duplicate_record"), ("174413ec", None, None)]
    assert len({im.image_id for im in first.images}) == 3  # the repeated row is kept, as a quarantinable image
    assert all(Path(im.path).is_absolute() and Path(im.path).exists() for im in first.images)
    assert (dup.subject_id, dup.error) == ("12000012", "duplicate_record")
    assert [im.image_id for im in dup.images] == ["d-dup"]

    sep = by["53189527"][0]  # report from mimic-cxr-reports/files
    assert sep.error is None and "(b)" in sep.report

    bad = by["52222222"][0]
    assert (bad.report, bad.error) == (None, "report_not_utf8")
    assert "caf" not in bad.error_detail  # no report text in details

    assert (by["53333333"][0].report, by["53333333"][0].error) == (None, "report_missing")
    gone = by["54444444"][0]
    assert gone.error is None and not Path(gone.images[0].path).exists()
    assert by["55555555"][0].images == [] and by["55555555"][0].error is None
    assert by["row-9"][0].error == "source_record_invalid"
    for s in studies:
        assert s.error is None or s.error in REASONS


def test_mimic_jpg_tree_walk(mimic_jpg_root: Path) -> None:
    studies = list(READERS["mimic"](mimic_jpg_root))
    assert [s.study_id for s in studies] == ["50414267", "56699142", "58971208"]
    a, report_only, no_report = studies
    assert (a.subject_id, a.split, a.error) == ("10000032", "val", None)
    assert [(im.image_id, im.view, Path(im.path).suffix) for im in a.images] == [
        ("02aa804e", "PA", ".jpg"), ("174413ec", "LATERAL", ".jpg")]  # LL: a lateral
    assert report_only.images == [] and report_only.error is None and "no images" in report_only.report
    assert (no_report.subject_id, no_report.error, no_report.split) == ("19999987", "report_missing", "test")


def test_synth_uses_mimic_reader(mimic_jpg_root: Path) -> None:
    assert READERS["synth"] is READERS["mimic"]
    assert [s.study_id for s in read_source("synth", mimic_jpg_root)][0] == "50414267"


# ---------------------------------------------------------------- CheXpert Plus


def test_chexpert_plus(chexpert_root: Path) -> None:
    studies = list(read_source("chexpert-plus", chexpert_root))
    assert [s.study_id for s in studies] == ["patient00001/study1", "patient00002/study2",
                                              "patient00002/study10", "patient00003/study1"]
    s1, no_report, s10, bad = studies
    assert (s1.subject_id, s1.split, s1.error) == ("patient00001", "train", None)
    assert s1.sections == {"narrative": "Chest 1 View", "findings": "No pneumothorax.",
                           "impression": "Normal."}  # accession number is not a section
    assert s1.report.startswith("NARRATIVE:\nChest 1 View")  # multi-line CSV cell intact
    frontal, lateral, repeated = s1.images
    assert (repeated.error, repeated.path) == ("duplicate_record", lateral.path)  # kept, to be quarantined
    assert (frontal.view, Path(frontal.path).suffix) == ("PA", ".dcm")  # DICOM preferred
    assert (lateral.view, Path(lateral.path).suffix) == ("LATERAL", ".png")  # PNG release accepted
    assert frontal.image_id == "patient00001/study1/view1_frontal"
    assert s1.meta["demographics"]["sex"] == "Female"
    assert (s10.split, s10.images[0].view) == ("val", "AP")
    assert s10.sections == {"narrative": "Chest 1 View", "impression": "Cardiomegaly."}
    assert (no_report.report, no_report.error) == (None, "report_missing")
    assert not Path(no_report.images[0].path).exists()  # listed anyway: decoder reports it
    assert (bad.report, bad.error) == (None, "report_not_utf8")


# ---------------------------------------------------------------- Open-I


def test_openi(openi_root: Path) -> None:
    studies = list(read_source("openi", openi_root))
    assert [s.study_id for s in studies] == ["99", "CXR1", "CXR2", "CXR10"]
    broken, cxr1, cxr2, cxr10 = studies
    assert (broken.subject_id, broken.report, broken.error) == ("99", None, "source_record_invalid")
    assert broken.error_detail.startswith("XML parse error at line ")

    assert cxr1.subject_id == "CXR1" and cxr1.error is None
    assert cxr1.report == ("COMPARISON: None.\nINDICATION: Positive TB test\nFINDINGS: The cardiac "
                           "silhouette and mediastinum size are within normal limits.\n"
                           "IMPRESSION: Normal chest x-XXXX.")
    assert set(cxr1.sections) == {"comparison", "indication", "findings", "impression"}
    assert cxr1.meta == {"mesh_major": ["normal"], "mesh_automatic": ["Opacity/lung"]}
    (im1, im2) = cxr1.images
    assert im1.image_id == "CXR1_1_IM-0001-3001" and Path(im1.path).exists() and im1.view is None
    assert im2.image_id == "CXR1_1_IM-0001-4001" and not Path(im2.path).exists()

    assert cxr10.report == "FINDINGS: Borderline cardiomegaly.\nIMPRESSION: No acute findings."
    assert set(cxr10.sections) == {"findings", "impression"}  # empty labels skipped
    assert Path(cxr10.images[0].path).parent.name == "images"
    assert Path(cxr2.images[0].path).parent == openi_root.absolute()


# ---------------------------------------------------------------- manifest


def test_manifest(manifest_root: Path) -> None:
    studies = list(read_source("manifest", manifest_root))
    assert [s.study_id for s in studies] == ["row-4", "s2", "s3", "s10"]
    invalid, s2, s3, s10 = studies
    assert (invalid.error, invalid.subject_id) == ("source_record_invalid", "p3")
    assert (s2.subject_id, s2.split, s2.report) == ("p1", "val", "FINDINGS: clear.")
    assert [(im.image_id, im.view) for im in s2.images] == [("s2_a", "PA"), ("s2_b", "LATERAL")]
    assert Path(s2.images[0].path) == manifest_root.absolute() / "img/s2_a.png"
    assert (s3.error, s10.split, s10.images[0].view) == ("report_missing", "test", None)
    # The CSV itself is an accepted root.
    assert [s.study_id for s in READERS["manifest"](manifest_root / "manifest.csv")] == \
        [s.study_id for s in studies]


def test_manifest_duplicate_study(tmp_path: Path) -> None:
    _write_csv(tmp_path / "manifest.csv", MANIFEST_HEADER[:4], [
        ["s1", "p1", "a", "1.png"], ["s1", "p9", "b", "2.png"]])
    first, second = read_source("manifest", tmp_path)
    assert (first.error, second.error, second.subject_id) == (None, "duplicate_record", "p9")


def test_manifest_missing_columns(tmp_path: Path) -> None:
    _write_csv(tmp_path / "manifest.csv", ["study_id", "report"], [["s1", "x"]])
    with pytest.raises(ValueError, match="subject_id, image_path"):
        read_source("manifest", tmp_path)
    with pytest.raises(ValueError, match="subject_id"):
        list(READERS["manifest"](tmp_path))


# ---------------------------------------------------------------- read_source and ordering


def test_read_source_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown source 'nih'"):
        read_source("nih", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_source("mimic", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="is this a MIMIC-CXR root"):
        read_source("mimic", tmp_path)
    with pytest.raises(FileNotFoundError, match="CheXpert Plus"):
        read_source("chexpert-plus", tmp_path)
    with pytest.raises(FileNotFoundError, match="Open-I"):
        read_source("openi", tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest.csv"):
        read_source("manifest", tmp_path)
    with pytest.raises(FileNotFoundError, match="image root .* is not a folder"):
        read_source("openi", tmp_path, tmp_path / "no-images-here")
    assert set(READERS) == {"synth", "mimic", "chexpert-plus", "openi", "manifest"}


@pytest.mark.parametrize("source,fixture", [("mimic", "mimic_root"), ("mimic", "mimic_jpg_root"),
                                            ("chexpert-plus", "chexpert_root"), ("openi", "openi_root"),
                                            ("manifest", "manifest_root")])
def test_deterministic(source: str, fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    first, second = list(read_source(source, root)), list(read_source(source, root))
    assert first == second
    assert all(isinstance(s.study_id, str) and isinstance(s.subject_id, str) for s in first)
    assert all(s.error is None or s.error in REASONS for s in first)
