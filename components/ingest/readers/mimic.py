"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG: files/pXX/p<subject>/s<study>.txt + s<study>/<dicom_id>.*

The record list (cxr-record-list.csv[.gz]) is authoritative when present, because a study it lists
must be yielded even when its images are gone from disk. Without it the files/ tree is walked.
Reports may sit next to the images, in a separate mimic-cxr-reports/files tree, or still packed in
mimic-cxr-reports.zip (read in place). MIMIC-CXR-JPG ships no reports: they come from MIMIC-CXR.
Images may live under another folder (image_root) holding the same files/ tree.
Views: the -JPG metadata CSV when present; otherwise the decoder reads each DICOM's own header.
A partition (files/pNN, `partition`) reads only the records under that folder, so a dataset too big for one
machine is ingested folder by folder and merged (components/ingest/merge.py); a record that names no
folder (a line that does not parse, a row without a path) belongs to the first partition.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from components.ingest.readers._common import (
    StudyGroups, add_image, clean, count_record, find_csv, natural_key, norm_split, open_csv, read_records,
    read_report, report_text, strip_prefix)
from components.ingest.records import RawStudy
from components.ingest.views import from_code_meaning, normalise_view

IMAGE_SUFFIXES = (".dcm", ".jpg", ".jpeg", ".png")
REPORT_ROOTS = (".", "mimic-cxr-reports")  # where files/... report trees may live, under root
REPORTS_ZIP = "mimic-cxr-reports.zip"
_ZIP_REPORT = re.compile(r"(?:^|/)(files/p\d+/p\d+/s\d+)\.txt$")
_PARTITION = re.compile(r"p\d+")


def check_root(root: Path) -> None:
    if not root.is_dir() or not (find_csv(root, "cxr-record-list.csv") or (root / "files").is_dir()
                                 or (root / REPORTS_ZIP).is_file()):
        raise FileNotFoundError(
            f"no cxr-record-list.csv(.gz), no files/ folder and no {REPORTS_ZIP} under {root}: "
            "is this a MIMIC-CXR root?")


def partition_of(rel: str) -> str | None:
    """files/p10/p10000032/... -> p10; None for a path outside a pNN folder."""
    parts = PurePosixPath(rel).parts
    return parts[1] if len(parts) > 2 and parts[0] == "files" and _PARTITION.fullmatch(parts[1]) else None


def partitions(root: Path, image_root: Path | None = None) -> list[str]:
    """The pNN folders of the dataset: on disk, named by the record and study lists, in the reports zip."""
    root = Path(root)
    found: set[str | None] = set()
    for base in {root, root / "mimic-cxr-reports", Path(image_root) if image_root else root}:
        if (base / "files").is_dir():
            found |= {d.name for d in (base / "files").iterdir() if d.is_dir() and _PARTITION.fullmatch(d.name)}
    for name in ("cxr-record-list.csv", "cxr-study-list.csv"):
        path = find_csv(root, name)
        try:
            found |= {partition_of(clean(row.get("path"))) for row in (open_csv(path) if path else ())}
        except csv.Error:
            pass  # a broken list is quarantined line by line when read; its folders are on disk
    zipped = _open_zip(root) if (root / REPORTS_ZIP).is_file() else None
    if zipped:
        found |= {partition_of(d) for d in zipped[1]}
        zipped[0].close()
    found.discard(None)
    return sorted(found, key=natural_key)


def _selector(root: Path, image_root: Path | None, partition: str) -> Callable[[str], bool]:
    known = partitions(root, image_root)
    if partition not in known:
        raise ValueError(f"unknown partition {partition!r} under {root}/files: "
                         f"the partitions are {', '.join(known) or '(none)'}")
    return lambda rel: (partition_of(rel) or known[0]) == partition


def read(root: Path, image_root: Path | None = None, partition: str = "") -> Iterator[RawStudy]:
    root = Path(root).absolute()
    images = Path(image_root).absolute() if image_root else root
    check_root(root)
    belongs = _selector(root, image_root, partition) if partition else None
    tables = [root] + ([images] if images != root else [])  # -JPG CSVs may sit with the images
    views = _views(tables)
    splits = _splits(tables)
    groups = StudyGroups()
    zipped = _open_zip(root)
    record_list = find_csv(root, "cxr-record-list.csv")
    if record_list:
        _from_record_list(images, record_list, groups, views, belongs)
        study_list = find_csv(root, "cxr-study-list.csv")
        if study_list:  # studies with a report but no image rows
            _from_study_list(study_list, groups, belongs)
    else:
        members = zipped[1] if zipped else {}
        _from_tree(root, images, groups, views, {d: m for d, m in members.items() if not belongs or belongs(d)},
                   partition or "p*")
    try:
        for study in groups:
            study.split = splits.get(study.study_id)
            if "study_dir" in study.meta:  # invalid rows have no location to look in
                _attach_report(root, study, zipped)
            yield study
    finally:
        if zipped:
            zipped[0].close()


def _open_zip(root: Path) -> tuple[zipfile.ZipFile, dict[str, str]] | None:
    """mimic-cxr-reports.zip and its members by study dir (files/p10/p10000032/s50414267)."""
    path = root / REPORTS_ZIP
    if not path.is_file():
        return None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path.name} is not a readable zip ({type(exc).__name__})") from None
    members = {}
    for name in archive.namelist():
        m = _ZIP_REPORT.search(name)
        if m:
            members.setdefault(m[1], name)
    return archive, members


def _new_study(study_id: str, subject_id: str, study_dir: str) -> RawStudy:
    # meta["study_dir"] (relative, e.g. files/p10/p10000032/s50414267) locates the report later.
    return RawStudy(study_id=study_id, subject_id=subject_id, report=None,
                    meta={"study_dir": study_dir})


def _from_record_list(images: Path, path: Path, groups: StudyGroups, views: dict, belongs=None) -> None:
    keep = (lambda row: belongs(clean(row.get("path")) if row else "")) if belongs else None
    for n, (record, row, problem) in enumerate(read_records(path, keep), start=1):
        if record is None:  # another partition's
            continue
        if row is None:  # a line of a record that does not parse cleanly, quarantined on its own
            groups.add(RawStudy(study_id=f"line-{record.rsplit(':', 1)[1]}", subject_id="", report=None,
                                error="source_record_malformed", error_detail=problem, records=[record]))
            continue
        rel = clean(row.get("path"))
        # Ids come from the columns, else from the path (files/pXX/p<subject>/s<study>/<dicom>.dcm).
        parts = ("", "", "") + PurePosixPath(rel).parts
        study_id = strip_prefix(clean(row.get("study_id")) or parts[-2], "s")
        subject_id = strip_prefix(clean(row.get("subject_id")) or parts[-3], "p")
        dicom_id = clean(row.get("dicom_id")) or PurePosixPath(rel).stem
        if not (study_id and subject_id and rel):
            groups.add(RawStudy(study_id=f"row-{n}", subject_id=subject_id or f"row-{n}", report=None,
                                error="source_record_invalid",
                                error_detail=f"{path.name} row {n} lacks study_id, subject_id or path",
                                records=[record]))
            continue
        study_dir = str(PurePosixPath(rel).parent)
        study = groups.get(study_id, study_dir, lambda: _new_study(study_id, subject_id, study_dir))
        study.records.append(record)
        add_image(study, dicom_id, str(_image_path(images, rel)), views.get(dicom_id))


def _from_study_list(path: Path, groups: StudyGroups, belongs=None) -> None:
    for row in open_csv(path):
        rel = clean(row.get("path"))  # files/p10/p10000032/s50414267.txt
        if belongs and not belongs(rel):
            continue
        study_id = strip_prefix(clean(row.get("study_id")), "s")
        subject_id = strip_prefix(clean(row.get("subject_id")), "p")
        if study_id and subject_id and rel:
            study_dir = str(PurePosixPath(rel).with_suffix(""))
            groups.get(study_id, study_dir, lambda: _new_study(study_id, subject_id, study_dir))


def _from_tree(root: Path, images: Path, groups: StudyGroups, views: dict, zipped: dict[str, str],
               folders: str = "p*") -> None:
    """Studies are the union of s*.txt reports (trees or zip) and s*/ image folders (under files/<folders>)."""
    found: dict[str, tuple[str, str, Path | None]] = {}  # study_dir -> (subject, study, image dir)
    bases = [root / b for b in REPORT_ROOTS] + ([images] if images != root else [])
    for base in bases:
        for entry in sorted(base.glob(f"files/{folders}/p*/s*")):
            subject_id, study_id = strip_prefix(entry.parent.name, "p"), strip_prefix(entry.stem, "s")
            study_dir = str(entry.with_suffix("").relative_to(base))
            if entry.is_dir():
                found[study_dir] = (subject_id, study_id, entry)
            elif entry.suffix == ".txt":
                found.setdefault(study_dir, (subject_id, study_id, None))
    for study_dir in zipped:
        parts = PurePosixPath(study_dir).parts
        found.setdefault(study_dir, (strip_prefix(parts[-2], "p"), strip_prefix(parts[-1], "s"), None))
    for study_dir, (subject_id, study_id, image_dir) in sorted(found.items()):
        study = groups.get(study_id, study_dir, lambda: _new_study(study_id, subject_id, study_dir))
        study.records.append(count_record(study_dir))  # without a record list, the listing is the record
        if image_dir is not None:
            for f in sorted(image_dir.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    add_image(study, f.stem, str(f), views.get(f.stem))


def _image_path(root: Path, rel: str) -> Path:
    """The listed path; if a .dcm is listed but only the -JPG .jpg exists, use that."""
    path = root / rel
    if not path.exists():
        for suffix in IMAGE_SUFFIXES:
            if path.with_suffix(suffix).exists():
                return path.with_suffix(suffix)
    return path  # may not exist: the decoder reports image_file_missing


def _zipped_report(zipped, study_dir: str, name: str) -> tuple[str | None, str, str]:
    """A report from the reports zip, refused unread when larger than the report size cap."""
    info = zipped[0].getinfo(zipped[1][study_dir])
    try:
        return report_text(info.file_size, lambda: zipped[0].read(info), name)
    except (OSError, zipfile.BadZipFile) as exc:
        return None, "report_missing", f"{name}: unreadable ({type(exc).__name__})"


def _attach_report(root: Path, study: RawStudy, zipped) -> None:
    """Set the report text; a report problem is recorded unless the study already has an error."""
    study_dir = study.meta.pop("study_dir")
    name = f"s{study.study_id}.txt"
    # MIMIC-CXR-JPG ships no reports: they come from MIMIC-CXR (its files/ tree or the reports zip).
    error, detail = "report_missing", f"no {name} under files/, mimic-cxr-reports/files/ or in {REPORTS_ZIP}"
    sources = [lambda p=root / base / f"{study_dir}.txt": read_report(p) for base in REPORT_ROOTS
               if (root / base / f"{study_dir}.txt").is_file()]
    if zipped and study_dir in zipped[1]:
        sources.append(lambda: _zipped_report(zipped, study_dir, name))
    for read in sources[:1]:
        study.report, error, detail = read()
        if study.report is not None:
            return
    if study.error is None:
        study.error, study.error_detail = error, detail


def _first_csv(tables: list[Path], name: str) -> Path | None:
    return next((p for t in tables if (p := find_csv(t, name))), None)


def _views(tables: list[Path]) -> dict[str, str]:
    path = _first_csv(tables, "mimic-cxr-2.0.0-metadata.csv")
    if path is None:
        return {}
    views = {}
    for row in open_csv(path):
        view = normalise_view(row.get("ViewPosition")) or from_code_meaning(row.get("ViewCodeSequence_CodeMeaning"))
        if view and clean(row.get("dicom_id")):
            views[clean(row.get("dicom_id"))] = view
    return views


def _splits(tables: list[Path]) -> dict[str, str]:
    """study_id -> train/val/test; the split file lists images, all of a study share one split."""
    path = _first_csv(tables, "mimic-cxr-2.0.0-split.csv")
    splits: dict[str, str] = {}
    for row in open_csv(path) if path else ():
        split = norm_split(row.get("split"))
        study_id = strip_prefix(clean(row.get("study_id")), "s")
        if split and study_id:
            splits.setdefault(study_id, split)
    return splits
