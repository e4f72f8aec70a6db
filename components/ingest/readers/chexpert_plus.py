"""CheXpert Plus: df_chexpert_plus_240401.csv, one row per image, report and sections repeated per row.

Columns (27, as released): path_to_image, path_to_dcm, frontal_lateral, ap_pa, deid_patient_id,
patient_report_date_order, report, section_narrative, section_clinical_history, section_history,
section_comparison, section_technique, section_procedure_comments, section_findings,
section_impression, section_end_of_impression, section_summary, section_accession_number, age, sex,
race, ethnicity, interpreter_needed, insurance_type, recent_bmi, deceased, split.

Images come in separate archives and are found under the root (or ingest.image_root) in any of the
layouts they unpack to: PNG/train/..., PNG/PNG/train/..., DICOM/train/..., the original CheXpert
CheXpert-v1.0/train/... tree (JPEG), or train/... directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from components.ingest.readers._common import (
    StudyGroups, add_image, bad_utf8, clean, csv_header, read_records, study_from_row)
from components.ingest.records import RawStudy
from components.ingest.views import normalise_view

CSV_NAME = "df_chexpert_plus_240401.csv"
REQUIRED = ("path_to_image", "report")
# An accession number is an identifier, not report content: kept out of sections.
NOT_SECTIONS = ("section_accession_number",)
DEMOGRAPHICS = ("age", "sex", "race", "ethnicity", "interpreter_needed", "insurance_type",
                "recent_bmi", "deceased")
# Folders (under the root or image_root) that the released archives unpack to, most specific first.
IMAGE_FOLDERS = ("DICOM", "PNG", "PNG/PNG", "CheXpert-v1.0", "CheXpert-v1.0-small", ".")


def find_table(root: Path) -> Path:
    """The report CSV: root itself, root/df_chexpert_plus_240401.csv, or any CSV with the columns.

    Top-level CSVs are tried before a recursive search, which walks every image folder.
    """
    if root.is_file() and set(REQUIRED) <= set(csv_header(root)):
        return root
    if root.is_dir():
        if (root / CSV_NAME).is_file():
            return root / CSV_NAME
        for pattern in ("*.csv", "**/*.csv"):
            for path in sorted(root.glob(pattern)):
                if set(REQUIRED) <= set(csv_header(path)):
                    return path
    raise FileNotFoundError(
        f"no {CSV_NAME} (or other CSV with path_to_image and report columns) under {root}: "
        "is this a CheXpert Plus root?")


def check_root(root: Path) -> None:
    find_table(root)


def read(root: Path, image_root: Path | None = None) -> Iterator[RawStudy]:
    root = Path(root).absolute()
    table = find_table(root)
    base = Path(image_root).absolute() if image_root else table.parent if root.is_file() else root
    resolve = _Resolver(base)
    groups = StudyGroups()
    for n, (record, row, problem) in enumerate(read_records(table), start=1):
        if row is None:  # a line of a record that does not parse cleanly, quarantined on its own
            groups.add(RawStudy(study_id=f"line-{record.rsplit(':', 1)[1]}", subject_id="", report=None,
                                error="source_record_malformed", error_detail=problem, records=[record]))
            continue
        rel_img, rel_dcm = clean(row.get("path_to_image")), clean(row.get("path_to_dcm"))
        study_id, subject_id = _ids(rel_img or rel_dcm, clean(row.get("deid_patient_id")))
        if not study_id:
            groups.add(RawStudy(study_id=f"row-{n}", subject_id=subject_id or f"row-{n}", report=None,
                                error="source_record_invalid",
                                error_detail=f"{table.name} row {n}: no path_to_image/path_to_dcm",
                                records=[record]))
            continue
        report = row.get("report") or ""
        # Rows of one study repeat the same report; a different text means a conflicting record.
        study = groups.get(study_id, report.strip(), lambda: _new_study(study_id, subject_id, row))
        study.records.append(record)
        image_id = f"{study_id}/{PurePosixPath(rel_img or rel_dcm).stem}"
        add_image(study, image_id, str(resolve(rel_img, rel_dcm)), _view(row))
    yield from groups


def _ids(rel: str, patient: str) -> tuple[str, str]:
    """train/patient00001/study1/view1_frontal.jpg -> ("patient00001/study1", "patient00001")."""
    parts = PurePosixPath(rel).parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("patient") and parts[i + 1].startswith("study"):
            return f"{part}/{parts[i + 1]}", patient or part
    if len(parts) >= 3:  # unexpected folder names: still patient/study/file
        return f"{parts[-3]}/{parts[-2]}", patient or parts[-3]
    return "", patient


def _new_study(study_id: str, subject_id: str, row: dict[str, str]) -> RawStudy:
    study = study_from_row(study_id, subject_id, row)
    study.sections = {
        key.removeprefix("section_"): clean(value) for key, value in row.items()
        if key and key.startswith("section_") and key not in NOT_SECTIONS
        and clean(value) and bad_utf8(value) is None}
    demographics = {k: clean(row.get(k)) for k in DEMOGRAPHICS if clean(row.get(k))}
    study.meta = {"report_date_order": clean(row.get("patient_report_date_order")),
                  "demographics": demographics}
    return study


def _view(row: dict[str, str]) -> str | None:
    """Frontal with its ap_pa (a blank ap_pa is still frontal), Lateral, or unknown."""
    kind = clean(row.get("frontal_lateral")).lower()
    if kind == "lateral":
        return "LATERAL"
    if kind == "frontal":
        return normalise_view(row.get("ap_pa")) or "FRONTAL"
    return None


class _Resolver:
    """Where an image row's file is: the DICOM when downloaded, else the PNG (.jpg became .png), else
    the original JPEG, in whichever IMAGE_FOLDERS layout holds it.

    The layout that held the previous image is tried first, so a whole release costs about one
    stat per image rather than one per layout and format.
    """

    def __init__(self, base: Path):
        self.base, self.last = base, None

    def __call__(self, rel_img: str, rel_dcm: str) -> Path:
        forms = ([rel_dcm] if rel_dcm else []) + (
            [str(PurePosixPath(rel_img).with_suffix(".png")), rel_img] if rel_img else [])
        tried = [self.last] if self.last else []
        for key in tried + [(folder, i) for i in range(len(forms)) for folder in IMAGE_FOLDERS]:
            folder, i = key
            if i < len(forms) and (path := self.base / folder / forms[i]).is_file():
                self.last = key
                return path
        return self.base / (rel_img or rel_dcm)  # absent: the decoder reports image_file_missing
