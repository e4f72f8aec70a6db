"""Tiny datasets in the exact published layouts, with real (small) image files.

One builder per layout a user arrives with; each returns (ingest overrides, expectations). Schemas:
- MIMIC-CXR 2.0.0 (DICOM release): cxr-record-list.csv.gz (subject_id, study_id, dicom_id, path),
  cxr-study-list.csv.gz (subject_id, study_id, path), files/pXX/p<subject>/s<study>.txt reports and
  s<study>/<dicom_id>.dcm images; no metadata or split CSV (those are -JPG files), views only in headers.
- MIMIC-CXR-JPG 2.1.0: files/.../<dicom_id>.jpg, mimic-cxr-2.0.0-{metadata,split,chexpert,negbio}.csv.gz
  and mimic-cxr-2.1.0-test-set-labeled.csv; no reports (they come from MIMIC-CXR: mimic-cxr-reports.zip).
- CheXpert Plus: df_chexpert_plus_240401.csv (27 columns), chexbert_labels/{impression,findings,report}_fixed.json
  (JSON lines), images in PNG/, PNG/PNG/, DICOM/ or the original CheXpert-v1.0/ tree.
- Open-I: ecgen-radiology/<n>.xml, NLMCXR_png/CXR<n>_<...>.png, NLMCXR_dcm/<n>/<n>_<...>.dcm.
- A generic manifest.csv with a split column.
Reports are written the way radiologists write them, in each institution's house format.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from components.chexpert import OBSERVATIONS

# ------------------------------------------------------------------ files


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    data = buf.getvalue().encode()
    return write(path, gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def _pixels(seed: int, shape=(40, 32)) -> np.ndarray:
    """A small radiograph-like gradient with noise: enough contrast to survive the stretch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    return (200 + 12 * x + 9 * y + rng.integers(0, 40, shape)).astype(np.uint16)


def dicom(path: Path, seed: int, subject: str, view_position: str | None = None,
          view_meaning: str | None = None) -> Path:
    """A de-identified 12-bit DX DICOM; ViewPosition blank when None, ViewCodeSequence when given."""
    stored = _pixels(seed)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name), str(seed)])
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.BodyPartExamined, ds.PatientID = "DX", "CHEST", subject
    ds.ViewPosition = view_position or ""
    if view_meaning:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "R-10232", "SRT", view_meaning
        ds.ViewCodeSequence = Sequence([item])
    ds.BurnedInAnnotation = "NO"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = stored.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def bitmap(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((_pixels(seed) // 16).astype(np.uint8)).save(path)
    return path


# ------------------------------------------------------------------ reports (radiologists' phrasing)

MIMIC_REPORTS = {
    "normal": ("PA AND LAT", "___M with cough, evaluate for pneumonia.", "Chest PA and lateral.",
               "None.",
               "The lungs are clear without focal consolidation. No pleural effusion or pneumothorax is\n"
               " seen. The cardiac and mediastinal silhouettes are unremarkable.",
               "No acute cardiopulmonary process."),
    "effusion": ("PA AND LAT", "___F with dyspnea.", "PA and lateral views of the chest.",
                 "Chest radiograph from ___.",
                 "Moderate right pleural effusion with adjacent atelectasis. Heart size is mildly\n"
                 " enlarged. No pneumothorax.",
                 "1. Moderate right pleural effusion with adjacent compressive atelectasis.\n"
                 " 2. Mild cardiomegaly."),
    "ptx": ("PORTABLE AP", "___M status post chest tube placement.", "Portable AP view of the chest.",
            "Prior study from earlier the same day.",
            "Small left apical pneumothorax is slightly smaller. Left chest tube in place. Findings\n"
            " discussed with Dr. ___ at 10:15 by telephone.",
            "Small left apical pneumothorax, decreased."),
    "edema": ("PORTABLE AP", "___F intubated, assess ET tube position.", "Single portable AP view.",
              "___.",
              "Endotracheal tube tip terminates 4 cm above the carina. Enteric tube courses below the\n"
              " diaphragm. Diffuse interstitial and perihilar opacities, consistent with pulmonary edema.",
              "Moderate pulmonary edema. Lines and tubes as described."),
    "pneumonia": ("PA AND LAT", "___M with fever and productive cough.", "Chest PA and lateral.",
                  "None.",
                  "Right lower lobe consolidation concerning for pneumonia. No pleural effusion.",
                  "Right lower lobe pneumonia."),
    "fracture": ("PA AND LAT", "___F status post fall.", "Chest PA and lateral.", "None.",
                 "Acute displaced fracture of the left posterior seventh rib. The lungs are clear.",
                 "Acute left seventh rib fracture. No pneumothorax."),
}


def mimic_report(kind: str) -> str:
    exam, indication, technique, comparison, findings, impression = MIMIC_REPORTS[kind]
    return (f"                                 FINAL REPORT\n EXAMINATION:  CHEST ({exam})\n \n"
            f" INDICATION:  {indication}\n \n TECHNIQUE:  {technique}\n \n COMPARISON:  {comparison}\n \n"
            f" FINDINGS: \n \n {findings}\n \n IMPRESSION: \n \n {impression}\n")


# What a CheXpert-style labeler says of each report kind (the reference files ship these).
REFERENCE = {
    "normal": {"No Finding": 1.0},
    "effusion": {"Pleural Effusion": 1.0, "Atelectasis": 1.0, "Cardiomegaly": 1.0, "Pneumothorax": 0.0},
    "ptx": {"Pneumothorax": 1.0, "Support Devices": 1.0},
    "edema": {"Edema": 1.0, "Support Devices": 1.0, "Lung Opacity": 1.0},
    "pneumonia": {"Consolidation": 1.0, "Pneumonia": 1.0, "Pleural Effusion": 0.0},
    "fracture": {"Fracture": 1.0, "Pneumothorax": 0.0},
}
# The labels as columns in the order the MIMIC-CXR-JPG CSVs list them (alphabetical).
MIMIC_LABELS = sorted(OBSERVATIONS)


def _cell(kind: str, obs: str) -> str:
    v = REFERENCE[kind].get(obs)
    return "" if v is None else f"{v:.1f}"


# ------------------------------------------------------------------ MIMIC-CXR

# (subject, study, kind, [(dicom_id, ViewPosition, ViewCodeSequence meaning)], official split)
MIMIC_STUDIES = [
    ("10000032", "50414267", "normal", [("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "PA", "postero-anterior"),
                                        ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "LATERAL", "lateral")], "train"),
    ("10000032", "53189527", "effusion", [("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "AP AXIAL", None)], "train"),
    ("10000764", "57375967", "ptx", [("096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4", "PA LLD", None),
                                     ("b79e55c3-735ce5ac-64412506-cdc9ea79-f1af521f", "", "lateral")], "validate"),
    # lateral only: dropped under frontal_only, yet listed in the official split (the crash)
    ("10000898", "50771383", "edema", [("0c4eb1e1-b801903c-bcebe8a4-3da9cd3c-3b94a27c", "LL", "left lateral")], "test"),
    ("10000935", "51178377", "pneumonia", [("0cbfc2ba-4c742af0-52c354a0-450c360d-9326eb92", "", "antero-posterior")],
     "test"),
    ("10000980", "54577367", "fracture", [("1e7e5c5e-45be1ff5-9c54ec0d-ef0b1a34-2c1c6ae2", "AP", "antero-posterior")],
     "train"),
]


def _mimic_files(root: Path, ext: str, reports: bool) -> None:
    for n, (subject, study, kind, images, _) in enumerate(MIMIC_STUDIES):
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}"
        if reports:
            write(folder / f"s{study}.txt", mimic_report(kind))
        for k, (dicom_id, view, meaning) in enumerate(images):
            path = folder / f"s{study}" / f"{dicom_id}.{ext}"
            dicom(path, 10 * n + k, subject, view, meaning) if ext == "dcm" else bitmap(path, 10 * n + k)


def mimic_dicom_release(root: Path) -> Path:
    """MIMIC-CXR 2.0.0: DICOMs and reports, record lists; views only in the DICOM headers."""
    _mimic_files(root, "dcm", reports=True)
    records = [[s, st, d, f"files/p{s[:2]}/p{s}/s{st}/{d}.dcm"] for s, st, _, ims, _ in MIMIC_STUDIES for d, _, _ in ims]
    write_csv(root / "cxr-record-list.csv.gz", ["subject_id", "study_id", "dicom_id", "path"], records)
    write_csv(root / "cxr-study-list.csv.gz", ["subject_id", "study_id", "path"],
              [[s, st, f"files/p{s[:2]}/p{s}/s{st}.txt"] for s, st, *_ in MIMIC_STUDIES])
    return root


def mimic_reports_zip(path: Path) -> Path:
    """mimic-cxr-reports.zip as MIMIC-CXR distributes it: files/pXX/p<subject>/s<study>.txt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for subject, study, kind, *_ in MIMIC_STUDIES:
            z.writestr(f"files/p{subject[:2]}/p{subject}/s{study}.txt", mimic_report(kind))
    return path


METADATA_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
                   "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
                   "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]


def mimic_jpg_release(root: Path) -> Path:
    """MIMIC-CXR-JPG 2.1.0: JPEGs and the label/split/metadata CSVs, no reports."""
    _mimic_files(root, "jpg", reports=False)
    meta, split = [], []
    for subject, study, _, images, official in MIMIC_STUDIES:
        for dicom_id, view, meaning in images:
            meta.append([dicom_id, subject, study, "CHEST (PA AND LAT)", view, 3056, 2544, 21800506, 213014.531,
                         "CHEST (PA AND LAT)", meaning or "", "Erect"])
            split.append([dicom_id, study, subject, official])
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_HEADER, meta)
    write_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split)
    labels = [[s, st, *(_cell(kind, o) for o in MIMIC_LABELS)] for s, st, kind, *_ in MIMIC_STUDIES]
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *MIMIC_LABELS], labels)
    write_csv(root / "mimic-cxr-2.0.0-negbio.csv.gz", ["subject_id", "study_id", *MIMIC_LABELS], labels)
    # Radiologists' labels of the official test set; Lung Opacity is "Airspace Opacity" there.
    test_cols = [("Airspace Opacity" if o == "Lung Opacity" else o) for o in MIMIC_LABELS]
    write_csv(root / "mimic-cxr-2.1.0-test-set-labeled.csv", ["study_id", *test_cols],
              [[st, *(_cell(kind, o) for o in MIMIC_LABELS)] for _, st, kind, _, sp in MIMIC_STUDIES if sp == "test"])
    return root


# ------------------------------------------------------------------ CheXpert Plus

CHEXPERT_HEADER = [
    "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order",
    "report", "section_narrative", "section_clinical_history", "section_history", "section_comparison",
    "section_technique", "section_procedure_comments", "section_findings", "section_impression",
    "section_end_of_impression", "section_summary", "section_accession_number", "age", "sex", "race",
    "ethnicity", "interpreter_needed", "insurance_type", "recent_bmi", "deceased", "split"]
# (patient, study, kind, [(view file, frontal_lateral, ap_pa)], split)
CHEXPERT_STUDIES = [
    ("patient00001", "study1", "normal", [("view1_frontal", "Frontal", "PA"), ("view2_lateral", "Lateral", "")],
     "train"),
    ("patient00002", "study1", "effusion", [("view1_frontal", "Frontal", "AP")], "train"),
    ("patient00002", "study2", "edema", [("view1_frontal", "Frontal", "AP")], "train"),
    ("patient00003", "study1", "ptx", [("view1_lateral", "Lateral", "")], "train"),  # dropped: lateral only
    ("patient64541", "study1", "pneumonia", [("view1_frontal", "Frontal", "PA")], "valid"),
]
CHEXPERT_TEXT = {
    "normal": ("CHEST 2 VIEWS", "Cough.", "None.", "The lungs are clear. Heart size is normal. No effusion.",
               "1. No acute cardiopulmonary disease."),
    "effusion": ("CHEST 1 VIEW", "Shortness of breath.", "Radiograph from yesterday.",
                 "Large right pleural effusion with compressive atelectasis. Cardiac silhouette is enlarged.",
                 "1. Large right pleural effusion.\n2. Cardiomegaly."),
    "edema": ("CHEST 1 VIEW", "Intubated.", "Earlier today.",
              "Endotracheal tube 5 cm above the carina. Bilateral perihilar opacities, likely pulmonary edema.",
              "1. Pulmonary edema, worse.\n2. Support lines unchanged."),
    "ptx": ("CHEST 1 VIEW", "Chest tube.", "None.", "Small right apical pneumothorax. Right chest tube.",
            "1. Small right pneumothorax."),
    "pneumonia": ("CHEST 2 VIEWS", "Fever.", "None.", "Left lower lobe consolidation.",
                  "1. Left lower lobe pneumonia."),
}


def _chexpert_report(kind: str) -> tuple[str, dict]:
    narrative, history, comparison, findings, impression = CHEXPERT_TEXT[kind]
    report = (f"NARRATIVE:\n{narrative}\n\nCLINICAL HISTORY: {history}\n\nCOMPARISON: {comparison}\n\n"
              f"FINDINGS:\n{findings}\n\nIMPRESSION:\n{impression}\n\nEND OF IMPRESSION:\n"
              "I have personally reviewed the images for this examination and agreed with the report "
              "transcribed above.")
    return report, {"section_narrative": narrative, "section_clinical_history": history,
                    "section_comparison": comparison, "section_findings": findings, "section_impression": impression}


CHEXPERT_LAYOUTS = ("PNG", "PNG/PNG", "DICOM", "CheXpert-v1.0")


def chexpert_plus(root: Path, layout: str) -> Path:
    """CheXpert Plus with its CSV and CheXbert labels; images in one of CHEXPERT_LAYOUTS."""
    rows, chexbert = [], []
    for n, (patient, study, kind, views, split) in enumerate(CHEXPERT_STUDIES):
        report, sections = _chexpert_report(kind)
        for k, (name, frontal, ap_pa) in enumerate(views):
            rel = f"{'valid' if split == 'valid' else 'train'}/{patient}/{study}/{name}"
            values = dict.fromkeys(CHEXPERT_HEADER, "") | sections | {
                "path_to_image": f"{rel}.jpg", "path_to_dcm": f"{rel}.dcm", "frontal_lateral": frontal,
                "ap_pa": ap_pa, "deid_patient_id": patient, "patient_report_date_order": 1, "report": report,
                "section_accession_number": "9959089", "age": 62.0, "sex": "Female", "race": "White",
                "ethnicity": "Non-Hispanic/Non-Latino", "interpreter_needed": "No", "insurance_type": "Medicare",
                "recent_bmi": 27.1, "deceased": "No", "split": split}
            rows.append([values[c] for c in CHEXPERT_HEADER])
            chexbert.append({"path_to_image": f"{rel}.jpg",
                             **{o: REFERENCE[kind].get(o) for o in OBSERVATIONS}})
            if layout == "DICOM":
                dicom(root / "DICOM" / f"{rel}.dcm", 100 + 10 * n + k, patient,
                      "PA" if ap_pa == "PA" else "AP" if frontal == "Frontal" else "LL")
            elif layout == "CheXpert-v1.0":
                bitmap(root / "CheXpert-v1.0" / f"{rel}.jpg", 100 + 10 * n + k)
            else:
                bitmap(root / layout / f"{rel}.png", 100 + 10 * n + k)
    write_csv(root / "df_chexpert_plus_240401.csv", CHEXPERT_HEADER, rows)
    lines = "\n".join(json.dumps(r) for r in chexbert) + "\n"
    write(root / "chexbert_labels" / "impression_fixed.json", lines)
    write(root / "chexbert_labels" / "findings_fixed.json", lines)
    write(root / "chexbert_labels" / "report_fixed.json", lines)
    return root


# ------------------------------------------------------------------ Open-I

OPENI_STUDIES = [  # (n, kind, [image ids], findings, impression)
    (1, "normal", ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
     "The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary edema. "
     "There is no focal consolidation. There are no XXXX of a pleural effusion. There is no evidence of "
     "pneumothorax.", "Normal chest x-XXXX."),
    (2, "cardiomegaly", ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"],
     "Borderline cardiomegaly. Midline sternotomy XXXX. Enlarged pulmonary arteries. Clear lungs. "
     "Inferior XXXX XXXX XXXX.", "No acute pulmonary findings."),
    (3, "effusion", ["CXR3_IM-1384-2001"],  # the lateral only: dropped under frontal_only
     "Small left pleural effusion. Heart size normal.", "Small left effusion."),
    (4, "atelectasis", ["CXR4_IM-2050-1001"],
     "There are diffuse bilateral interstitial and alveolar opacities consistent with chronic obstructive "
     "lung disease and bullous emphysema. There are irregular opacities in the left lung apex.",
     "Bullous emphysema and interstitial fibrosis. Probably scarring in the left apex."),
]
OPENI_LATERAL = {"CXR1_1_IM-0001-4001", "CXR2_IM-0652-2001", "CXR3_IM-1384-2001"}


def openi_xml(n: int, findings: str, impression: str, images: list[str]) -> str:
    parents = "".join(f"""
   <parentImage id="{i}">
      <figureId>F{k}</figureId>
      <caption>Xray Chest PA and Lateral</caption>
      <panel type="single">
         <url>/hadoop/storage/radiology/extract/{i}.jpg</url>
         <imgModality>7</imgModality>
      </panel>
   </parentImage>""" for k, i in enumerate(images, start=1))
    return f"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR{n}"/>
   <pmcId id="{n}"/>
   <docSource>CXR</docSource>
   <IUXRId id="{n}"/>
   <licenseType>open-access</licenseType>
   <publisher>Indiana University</publisher>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">XXXX-year-old with chest pain.</AbstractText>
            <AbstractText Label="FINDINGS">{findings}</AbstractText>
            <AbstractText Label="IMPRESSION">{impression}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH><major>normal</major><automatic>Opacity/lung</automatic></MeSH>{parents}
</eCitation>
"""


def openi(root: Path, images: bool = True, dicoms: bool = True) -> Path:
    """ecgen-radiology XMLs; with images, NLMCXR_png PNGs and (dicoms) the NLMCXR_dcm release."""
    for n, _, ids, findings, impression in OPENI_STUDIES:
        write(root / "ecgen-radiology" / f"{n}.xml", openi_xml(n, findings, impression, ids))
        for k, image_id in enumerate(ids):
            if images:
                bitmap(root / "NLMCXR_png" / f"{image_id}.png", 300 + 10 * n + k)
            if images and dicoms:
                lateral = image_id in OPENI_LATERAL
                # NLMCXR_dcm.tgz: a folder per report; CXR1_1_IM-0001-3001 -> 1/1_IM-0001-3001.dcm
                name = image_id.removeprefix(f"CXR{n}_").removeprefix(f"{n}_")
                dicom(root / "NLMCXR_dcm" / str(n) / f"{n}_{name}.dcm", 300 + 10 * n + k,
                      f"CXR{n}", "LL" if lateral else "PA")
    return root


# ------------------------------------------------------------------ manifest


def manifest(root: Path) -> Path:
    """A hospital export: one row per image, with a split column; one study's only image is lateral."""
    rows = [["s1", "p1", mimic_report("normal"), "img/s1_pa.png", "train", "PA"],
            ["s2", "p1", mimic_report("effusion"), "img/s2_ap.png", "train", "AP"],
            ["s3", "p2", mimic_report("pneumonia"), "img/s3_lat.png", "test", "LATERAL"]]
    for n, row in enumerate(rows):
        bitmap(root / row[3], 500 + n)
    write_csv(root / "manifest.csv", ["study_id", "subject_id", "report", "image_path", "split", "view"], rows)
    return root
