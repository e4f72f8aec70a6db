"""A generic manifest CSV: study_id, subject_id, report, image_path[, split][, view], one row per image.

The root is the CSV itself or a folder holding manifest.csv; image paths are relative to the CSV's
folder, or to ingest.image_root when given (absolute paths are kept). Rows of one study repeat its study_id, subject_id and report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from components.ingest.readers._common import (
    StudyGroups, add_image, clean, csv_header, read_records, study_from_row)
from components.ingest.records import RawStudy
from components.ingest.views import normalise_view

CSV_NAME = "manifest.csv"
REQUIRED = ("study_id", "subject_id", "report", "image_path")


def find_table(root: Path) -> Path:
    path = root if root.is_file() else root / CSV_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CSV_NAME} at {root}: pass the manifest CSV or its folder")
    return path


def check_root(root: Path) -> None:
    """Missing required columns make the whole input unusable, so that raises rather than yields."""
    path = find_table(root)
    missing = [c for c in REQUIRED if c not in csv_header(path)]
    if missing:
        raise ValueError(f"{path.name} lacks required column(s) {', '.join(missing)}; "
                         f"a manifest needs {', '.join(REQUIRED)}")


def read(root: Path, image_root: Path | None = None) -> Iterator[RawStudy]:
    root = Path(root).absolute()
    check_root(root)
    table = find_table(root)
    images = Path(image_root).absolute() if image_root else table.parent
    groups = StudyGroups()
    for n, (record, row, problem) in enumerate(read_records(table), start=1):
        if row is None:  # a line of a record that does not parse cleanly, quarantined on its own
            groups.add(RawStudy(study_id=f"line-{record.rsplit(':', 1)[1]}", subject_id="", report=None,
                                error="source_record_malformed", error_detail=problem, records=[record]))
            continue
        study_id, subject_id = clean(row.get("study_id")), clean(row.get("subject_id"))
        if not (study_id and subject_id):
            empty = "study_id" if not study_id else "subject_id"
            # A synthetic id: reusing a real one would make this row look like that study's record.
            groups.add(RawStudy(study_id=f"row-{n}", subject_id=subject_id or f"row-{n}",
                                report=None, error="source_record_invalid",
                                error_detail=f"{table.name} row {n}: empty {empty}", records=[record]))
            continue
        report = row.get("report") or ""
        # A study id reused with another subject or report text is a second, conflicting record.
        study = groups.get(study_id, (subject_id, report.strip()),
                           lambda: study_from_row(study_id, subject_id, row))
        study.records.append(record)
        rel = clean(row.get("image_path"))
        if rel:
            add_image(study, Path(rel).stem, str(images / rel), normalise_view(row.get("view")))
    yield from groups
