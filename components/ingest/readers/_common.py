"""Helpers shared by the dataset readers: CSV access, id and split normalisation, study grouping,
and the census of raw source records that ingest reconciles its outputs with."""

from __future__ import annotations

import csv
import gzip
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from components.ingest.records import RawImage, RawStudy

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


class Census:
    """Every physical record a reader consumed (CSV row, XML file, listed folder), by location.

    Readers tag each study with the records it was built from (RawStudy.records); ingest checks
    that every record counted here ended in some study, so nothing the parser lost goes unnoticed.
    Also carries the limits a reader applies while reading (dataset root, report size cap).
    """

    def __init__(self, root: Path, max_report_bytes: int | None = None):
        self.root = Path(root).absolute()
        self.root_dir = self.root if self.root.is_dir() else self.root.parent
        self.max_report_bytes = max_report_bytes
        self.records: list[str] = []

    def add(self, record: str) -> str:
        self.records.append(record)
        return record


_CENSUS: ContextVar[Census | None] = ContextVar("census", default=None)


@contextmanager
def census(root: Path, max_report_bytes: int | None = None) -> Iterator[Census]:
    """Count the records that readers consume inside this block (consume the reader inside it)."""
    active = Census(root, max_report_bytes)
    token = _CENSUS.set(active)
    try:
        yield active
    finally:
        _CENSUS.reset(token)


def count_record(record: str) -> str:
    active = _CENSUS.get()
    return active.add(record) if active else record


def read_records(path: Path, keep: Callable[[dict[str, str] | None], bool] | None = None
                 ) -> Iterator[tuple[str | None, dict[str, str] | None, str]]:
    """(record id, row, problem) for every physical record of a primary CSV, counted in the census.

    `keep(row)` (row None for a line that does not parse) selects the records to read, e.g. one
    partition's: the others are yielded with record id None (so row numbers stay the file's) and not counted.

    A record whose field count differs from the header's, or whose quoting is broken (an
    unterminated quote swallows the rows after it), is not trusted: each physical line it spans
    is yielded on its own with row None and a problem naming the line, so it can be quarantined
    row by row. Record ids are "<file>:<line>" (line numbers count the header as line 1).
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = [c.strip() for c in next(reader)]
        except (StopIteration, csv.Error):
            return
        last = reader.line_num
        while True:
            problem = ""
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                fields, problem = None, f"broken quoting ({exc})"
            first, last = last + 1, reader.line_num
            if fields is not None and not fields:
                continue  # a blank line is no record
            if fields is not None and len(fields) != len(header):
                problem = f"{len(fields)} fields where the header has {len(header)}"
            if not problem:
                row = dict(zip(header, fields))
                yield (count_record(f"{path.name}:{first}") if keep is None or keep(row) else None), row, ""
                continue
            if keep is not None and not keep(None):
                yield from ((None, None, "") for _ in range(first, last + 1))  # one per line, as below
                continue
            span = f" (one record spans lines {first}-{last}: an unterminated quote?)" if last > first else ""
            for line in range(first, last + 1):
                yield count_record(f"{path.name}:{line}"), None, f"{path.name} line {line}: {problem}{span}"


_MISSING_MARKERS = {"nan", "none", "null", "na", "n/a", "<na>", "nat", "-", "?", "undefined"}


def id_problem(value: str) -> str | None:
    """Why a study or subject id is unusable (undecodable bytes, a missing-value marker), else None."""
    bad = bad_utf8(value)
    if bad is not None:
        return f"undecodable byte at char {bad}"
    if value.strip().lower() in _MISSING_MARKERS:
        return f"{value.strip()!r} is a missing-value marker, not an id"
    return None


def add_image(study: RawStudy, image_id: str, path: str, view: str | None = None) -> RawImage:
    """Add an image keeping image ids unique within the study whatever the file names.

    The same file listed again is a duplicate_record (quarantined, not silently collapsed); a
    different file with the same name (another folder) gets the next free "<id>~<n>".
    """
    same_file = any(im.path == path for im in study.images)
    taken = {im.image_id for im in study.images}
    unique, n = image_id, 1
    while unique in taken:
        n += 1
        unique = f"{image_id}~{n}"
    image = RawImage(unique, path, view)
    if same_file:
        image.error, image.detail = "duplicate_record", f"{Path(path).name} listed again for this study"
    study.images.append(image)
    return image


def read_report(path: Path) -> tuple[str | None, str, str]:
    """(text, reason, detail) of one report file: it must resolve inside the dataset root (a
    symlink to /etc/passwd is no report), fit the report size cap and be UTF-8."""
    active = _CENSUS.get()
    name = path.name
    try:
        real = path.resolve()
        if active and escapes_root(path, active.root_dir):
            return None, "outside_dataset_root", f"{name} resolves outside the dataset root"
        return report_text(real.stat().st_size, real.read_bytes, name)
    except OSError as exc:
        return None, "report_missing", f"{name}: unreadable ({type(exc).__name__})"


def report_text(size: int, read: Callable[[], bytes], name: str) -> tuple[str | None, str, str]:
    """(text, reason, detail) of a report of `size` bytes: refused unread above the size cap, else UTF-8."""
    active = _CENSUS.get()
    if active and active.max_report_bytes and size > active.max_report_bytes:
        return None, "report_too_large", f"{name}: {size} bytes > ingest.max_report_bytes={active.max_report_bytes}"
    try:
        return read().decode("utf-8").removeprefix("\ufeff"), "", ""
    except UnicodeDecodeError as exc:  # detail gives the offset only: no report text
        return None, "report_not_utf8", f"{name}: invalid UTF-8 at byte {exc.start}"


def is_inside(path: Path, root: Path, resolve: bool = True) -> bool:
    """Is `path` at or under `root`, after following symlinks (or lexically, resolve=False)?"""
    path, root = (os.path.realpath(p) if resolve else os.path.abspath(p) for p in (path, root))
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def escapes_root(path: str | Path, root: Path) -> bool:
    """A listed file that leaves the dataset through `..` or a symlink. A path the source lists as
    absolute and outside the root (a manifest pointing at another disk) is the user's explicit choice."""
    path = Path(path)
    if ".." in path.parts:
        return True
    return is_inside(path, root, resolve=False) and not is_inside(path, root)


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
