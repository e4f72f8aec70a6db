"""Reference CheXpert-style labels shipped with a dataset, to measure the project's labeler against.

Known files (looked for under the dataset root, then the image root):
    mimic-cxr-2.1.0-test-set-labeled   MIMIC-CXR-JPG 2.1.0: radiologists' labels of the test set
                                       ("Airspace Opacity" is CheXpert's Lung Opacity)
    mimic-cxr-2.0.0-chexpert           MIMIC-CXR-JPG: the CheXpert labeler's output (.csv.gz)
    mimic-cxr-2.0.0-negbio             MIMIC-CXR-JPG: NegBio's output (.csv.gz)
    chexbert_labels/impression_fixed   CheXpert Plus: CheXbert on the impression (JSON lines)
    chexbert_labels/findings_fixed     CheXpert Plus: CheXbert on the findings (JSON lines)
    chexbert_labels/report_fixed       CheXpert Plus: CheXbert on the whole report, history included
Each study gets the first of ingest.reference_labels that labels it (radiologists before labelers by
default), stored as reference_source plus one reference_<observation> column per observation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from components.chexpert import OBSERVATIONS, REFERENCE_COLUMNS
from components.ingest.readers._common import clean, find_csv, open_csv, strip_prefix

KNOWN = ("mimic-cxr-2.1.0-test-set-labeled", "mimic-cxr-2.0.0-chexpert", "mimic-cxr-2.0.0-negbio",
         "chexbert_labels/impression_fixed", "chexbert_labels/findings_fixed", "chexbert_labels/report_fixed")
COLUMNS = REFERENCE_COLUMNS
# Column names in the released files that differ from CheXpert's observation names.
_ALIASES = {"airspace opacity": "Lung Opacity", "no findings": "No Finding"}
_BY_NAME = {o.lower(): o for o in OBSERVATIONS} | _ALIASES


def _value(cell) -> float | None:
    """1 / 0 / -1 as float; blank, NaN or anything else is None (not mentioned)."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return None
    return v if v in (1.0, 0.0, -1.0) and not math.isnan(v) else None


def _labels(record: dict) -> tuple[float | None, ...]:
    """The record's labels in OBSERVATIONS order (a tuple: 227k MIMIC-CXR studies stay small)."""
    out: dict[str, float | None] = dict.fromkeys(OBSERVATIONS)
    for key, cell in record.items():
        name = _BY_NAME.get(clean(key).lower())
        if name:
            out[name] = _value(cell)
    return tuple(out.values())


def _csv_rows(path: Path) -> Iterator[tuple[str, dict]]:
    for row in open_csv(path):
        study = strip_prefix(clean(row.get("study_id")), "s")
        if study:
            yield study, _labels(row)


def _json_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """CheXbert output: JSON lines (or one JSON array) of {path_to_image, <observation>: value}."""
    from components.ingest.readers.chexpert_plus import _ids

    text = path.read_text(encoding="utf-8")
    try:
        records = json.loads(text)
        records = records if isinstance(records, list) else [records]
    except ValueError:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        study = _ids(clean(record.get("path_to_image")), "")[0] if isinstance(record, dict) else ""
        if study:
            yield study, _labels(record)


def _find(name: str, roots: list[Path]) -> Path | None:
    for root in roots:
        if name.startswith("chexbert_labels/"):
            path = root / f"{name}.json"
            if path.is_file():
                return path
        elif path := find_csv(root, f"{name}.csv"):
            return path
    return None


def load_references(names: list[str], roots: list[Path], studies: set[str] | None = None
                    ) -> tuple[dict[str, tuple[str, tuple]], dict[str, int]]:
    """study_id -> (source name, labels in OBSERVATIONS order), by priority of `names`, for the given
    studies (all when None); and the rows read per file found."""
    chosen: dict[str, tuple[str, tuple]] = {}
    found: dict[str, int] = {}
    for name in names:
        path = _find(name, [r for r in roots if r.is_dir()])
        if path is None:
            continue
        rows = _json_rows(path) if path.suffix == ".json" else _csv_rows(path)
        found[name] = 0
        for study, labels in rows:
            found[name] += 1
            if studies is None or study in studies:
                chosen.setdefault(study, (name, labels))
    return chosen, found


def labels_of(reference: tuple[str, tuple]) -> dict[str, float | None]:
    return dict(zip(OBSERVATIONS, reference[1]))


def reference_columns(reference: tuple[str, tuple] | None) -> dict:
    """The reference_* fields of one study row (all None when the study has no reference)."""
    labels = reference[1] if reference else (None,) * len(OBSERVATIONS)
    return {"reference_source": reference[0] if reference else None, **dict(zip(REFERENCE_COLUMNS, labels))}
