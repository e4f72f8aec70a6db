"""Helpers shared by the dataset readers: CSV access, id and split normalisation, study grouping."""

from __future__ import annotations

import csv
import gzip
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from components.ingest.records import RawStudy

# Report columns can hold long free text; the csv module's default 128 KiB cap would reject them.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

_SPLITS = {"train": "train", "valid": "val", "validate": "val", "validation": "val", "val": "val",
           "test": "test"}


def clean(value: object) -> str:
    """A CSV cell as a stripped string ('' for None / missing)."""
    return "" if value is None else str(value).strip()


def norm_split(value: object) -> str | None:
    """Source split names to train / val / test; anything else is unknown (None)."""
    return _SPLITS.get(clean(value).lower())


def strip_prefix(value: str, prefix: str) -> str:
    """'p10000032' -> '10000032', 's50414267' -> '50414267'; other strings unchanged."""
    return value[1:] if value[:1] == prefix and value[1:].isdigit() else value


def natural_key(text: str) -> tuple:
    """Sort key so that 'CXR2' < 'CXR10' and 'study2' < 'study10'."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text))


def find_csv(root: Path, name: str) -> Path | None:
    """root/name or root/name.gz, whichever exists (plain first)."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def open_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a plain or gzipped CSV as dicts of strings.

    Invalid UTF-8 is kept as lone surrogates (surrogateescape) rather than raising, so one bad
    cell never aborts a whole dataset; callers check the cells they care about with bad_utf8().
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        yield from csv.DictReader(fh)


def csv_header(path: Path) -> list[str]:
    """The header row of a plain or gzipped CSV ([] when empty or unreadable)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, csv.Error):
        return []


def bad_utf8(text: str) -> int | None:
    """Index of the first undecodable byte smuggled in by surrogateescape, else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


class StudyGroups:
    """Collects studies by id; a second, different record for the same id becomes duplicate_record.

    Each study id maps to variants keyed by what makes a record distinct in that source (its path,
    its report text, its subject). The first variant is the study; later ones are yielded after it
    with error="duplicate_record" so the pipeline can quarantine them.
    """

    def __init__(self) -> None:
        self._studies: dict[str, dict[object, RawStudy]] = {}

    def get(self, study_id: str, variant: object, make: Callable[[], RawStudy]) -> RawStudy:
        variants = self._studies.setdefault(study_id, {})
        if variant not in variants:
            variants[variant] = make()
        return variants[variant]

    def add(self, study: RawStudy) -> None:
        """Add a finished study (e.g. an invalid record) under a variant of its own."""
        variants = self._studies.setdefault(study.study_id, {})
        variants[("added", len(variants))] = study

    def __iter__(self) -> Iterator[RawStudy]:
        for study_id in sorted(self._studies, key=natural_key):
            for n, study in enumerate(self._studies[study_id].values()):
                if n and study.error is None:
                    study.error = "duplicate_record"
                    study.error_detail = f"study id {study_id} appears again as a different record"
                study.images.sort(key=lambda im: natural_key(im.image_id))
                yield study


def study_from_row(study_id: str, subject_id: str, row: dict[str, str]) -> RawStudy:
    """A study from a CSV row holding its report (CheXpert Plus, manifest): the report checked for
    undecodable bytes and emptiness, the split normalised."""
    study = RawStudy(study_id=study_id, subject_id=subject_id, report=None, split=norm_split(row.get("split")))
    text = row.get("report") or ""
    bad = bad_utf8(text)
    if bad is not None:
        study.error, study.error_detail = "report_not_utf8", f"report has invalid UTF-8 at char {bad}"
    elif not text.strip():
        study.error, study.error_detail = "report_missing", "report column is empty"
    else:
        study.report = text
    return study
