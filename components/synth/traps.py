"""Planted traps: bad input that later stages must catch, recorded in the truth table.

Each trapped study carries exactly one trap, so every outcome downstream can be traced to its cause.
"""

from __future__ import annotations

import numpy as np

TRAPS = (
    "report_phi",
    "dicom_header_phi",
    "burned_in_annotation",
    "truncated_dicom",
    "corrupt_dicom",
    "missing_report",
    "missing_image",
    "duplicate_study",
    "non_utf8_report",
)

# Where each trap must end up, as (stage, reason code). Text PHI is the clean stage's to catch;
# everything visible in files or pixels is caught at ingest.
EXPECTED_OUTCOME: dict[str, tuple[str, str]] = {
    "report_phi": ("clean", "report_phi"),
    "dicom_header_phi": ("ingest", "dicom_identifying_header"),
    "burned_in_annotation": ("ingest", "burned_in_annotation"),
    "truncated_dicom": ("ingest", "dicom_truncated"),
    "corrupt_dicom": ("ingest", "dicom_unreadable"),
    "missing_report": ("ingest", "report_missing"),
    "missing_image": ("ingest", "image_missing"),
    "duplicate_study": ("ingest", "duplicate_study"),
    "non_utf8_report": ("ingest", "report_not_utf8"),
}


def assign_traps(n_studies: int, rates: dict[str, float], seed: int) -> tuple[dict[int, str], dict[int, int]]:
    """Pick disjoint studies for each trap: round(rate * n), at least one when the rate is positive.

    Returns {study index: trap} and, for duplicates, {copy index: index of the clean original}.
    """
    rng = np.random.default_rng([seed, 0x7AB5])
    order = [int(i) for i in rng.permutation(n_studies)]
    counts = {t: (max(1, round(rates[t] * n_studies)) if rates[t] > 0 else 0) for t in TRAPS}
    needed = sum(counts.values()) + counts["duplicate_study"]  # each duplicate needs a clean original
    if needed > n_studies:
        raise ValueError(f"{n_studies} studies cannot hold {needed} trapped studies and originals; "
                         "raise synth.n_studies or lower synth.traps rates")
    traps: dict[int, str] = {}
    for trap in TRAPS:
        for _ in range(counts[trap]):
            traps[order.pop()] = trap
    duplicates: dict[int, int] = {}
    for copy in [i for i, t in traps.items() if t == "duplicate_study"]:
        original = order.pop(0)
        if original > copy:  # the copy must come later, so "first seen is kept" keeps the original
            del traps[copy]
            copy, original = original, copy
            traps[copy] = "duplicate_study"
        duplicates[copy] = original
    return traps, duplicates


def break_utf8(data: bytes) -> bytes:
    """Encode one space as a Windows-1252 no-break space: the commonest non-UTF-8 byte in reports."""
    i = data.find(b" ", len(data) // 3)
    i = i if i >= 0 else data.find(b" ")
    return data[:i] + b"\xa0" + data[i + 1:] if i >= 0 else data + b"\xa0"


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    """Cut a DICOM inside its pixel data, as an interrupted transfer does."""
    return data[: int(len(data) * rng.uniform(0.55, 0.85))]


def corrupt(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite the preamble, magic and header with noise: the file is no longer DICOM."""
    head = min(len(data), 1024)
    return rng.integers(0, 256, size=head, dtype=np.uint8).tobytes() + data[head:]
