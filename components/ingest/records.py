"""What a dataset reader yields, and the reason codes a record can be quarantined with."""

from __future__ import annotations

from dataclasses import dataclass, field

# Reason codes: stable strings, counted in summary.json and stored in quarantine.parquet.
REASONS: dict[str, str] = {
    "report_missing": "study has no report",
    "report_not_utf8": "report bytes are not valid UTF-8",
    "report_empty": "report has no text",
    "image_missing": "study has no image file",
    "image_file_missing": "an image listed for the study does not exist on disk",
    "dicom_truncated": "DICOM file ends before its pixel data does",
    "dicom_unreadable": "file is not a readable DICOM dataset",
    "dicom_no_pixels": "DICOM dataset carries no pixel data",
    "dicom_codec_unavailable": "compressed transfer syntax with no decoder installed",
    "image_unreadable": "image file cannot be decoded",
    "image_blank": "image has no contrast after windowing",
    "view_not_frontal": "view excluded by ingest.frontal_only",
    "view_unknown": "view unknown and ingest.unknown_view is quarantine (under ingest.frontal_only)",
    "no_frontal_image": "no frontal image of the study could be used",
    "duplicate_study": "same subject, report and pixels as an earlier study",
    "duplicate_record": "the same study id appears twice in the source",
    "source_record_invalid": "source row or file lacks a required field, or an id is unusable",
    "source_record_malformed": "a source table row that does not parse cleanly (reported line by line)",
    "outside_dataset_root": "the file resolves (through a symlink or ..) outside the dataset root",
    "report_too_large": "report larger than ingest.max_report_bytes",
    "report_not_text": "report is not natural-language text (binary or random characters)",
    "image_too_large": "image header claims more pixels or bytes than ingest.max_image_pixels/bytes",
    "dicom_pixel_format": "DICOM pixel data in a format that cannot be shown as a radiograph",
    "worker_crashed": "the worker process died twice on this item (out of memory?)",
}


@dataclass
class RawImage:
    """One image of a study as the source lists it."""

    image_id: str
    path: str  # absolute path to a DICOM, PNG or JPEG file
    view: str | None = None  # PA / AP / LATERAL / LL ... from source metadata when it has it (views.py)
    error: str | None = None  # a REASONS code when the listing itself is unusable (a repeated row)
    detail: str = ""


@dataclass
class RawStudy:
    """One study as a reader found it; problems are recorded, never raised."""

    study_id: str
    subject_id: str
    report: str | None  # decoded report text, None when missing or undecodable
    images: list[RawImage] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)  # as the source labels them
    split: str | None = None  # train / val / test when the source supplies it
    meta: dict = field(default_factory=dict)  # source extras (MeSH terms, demographics, ...)
    error: str | None = None  # a REASONS code when the study is unusable as read
    error_detail: str = ""  # why, without PHI
    records: list[str] = field(default_factory=list)  # raw source records it came from (Census ids)
