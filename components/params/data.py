"""Params of the data stages: synth, ingest, clean (with its Great Expectations bounds)."""

from __future__ import annotations


from pydantic import Field, model_validator

from components.params.base import _Section
from components.synth.styles import STYLES



class SynthNoise(_Section):
    deid_token_rate: float = Field(0.5, ge=0, le=1)
    typo_rate: float = Field(0.05, ge=0, le=1)
    wrap_rate: float = Field(0.3, ge=0, le=1)
    # each of radiologists' phrasings the base renderer lacks (components/synth/phrasing.py), drawn at this rate
    real_phrasing_rate: float = Field(0.15, ge=0, le=1)


class SynthTraps(_Section):
    report_phi: float = Field(0.03, ge=0, le=1)
    dicom_header_phi: float = Field(0.03, ge=0, le=1)
    burned_in_annotation: float = Field(0.015, ge=0, le=1)
    truncated_dicom: float = Field(0.015, ge=0, le=1)
    corrupt_dicom: float = Field(0.015, ge=0, le=1)
    missing_report: float = Field(0.015, ge=0, le=1)
    missing_image: float = Field(0.015, ge=0, le=1)
    duplicate_study: float = Field(0.015, ge=0, le=1)
    non_utf8_report: float = Field(0.015, ge=0, le=1)


class SynthParams(_Section):
    out: str = "data/raw/synth"
    metrics: str = "data/metrics/synth.json"
    n_studies: int = Field(200, ge=1)
    seed: int = 0
    workers: int = Field(2, ge=1)
    studies_per_subject: float = Field(2.0, ge=1)
    image_size: int = Field(512, ge=64, le=4096)
    normal_rate: float = Field(0.3, ge=0, le=1)
    uncertain_rate: float = Field(0.15, ge=0, le=1)
    comparison_rate: float = Field(0.25, ge=0, le=1)
    device_rate_normal: float = Field(0.1, ge=0, le=1)
    ap_rate: float = Field(0.35, ge=0, le=1)
    lateral_rate: float = Field(0.3, ge=0, le=1)
    monochrome1_rate: float = Field(0.3, ge=0, le=1)
    styles: dict[str, float] = Field(default_factory=lambda: {
        "full": 0.35, "impression_only": 0.15, "abbreviated": 0.15, "terse_normal": 0.15, "numbered": 0.2})
    noise: SynthNoise = SynthNoise()
    traps: SynthTraps = SynthTraps()

    @model_validator(mode="after")
    def _known_styles(self):
        unknown = set(self.styles) - set(STYLES)
        if unknown:
            raise ValueError(f"unknown report styles {sorted(unknown)}; known: {list(STYLES)}")
        if not any(w > 0 for w in self.styles.values()):
            raise ValueError("at least one report style needs a positive weight")
        return self


SOURCES = ("synth", "mimic", "chexpert-plus", "openi", "manifest")


class IngestParams(_Section):
    source: str = "synth"
    input: str = "data/raw/synth"
    out: str = "data/ingested"
    metrics: str = "data/metrics/ingest.json"
    resolution: int = Field(256, ge=16, le=4096)
    frontal_only: bool = True
    percentiles: tuple[float, float] = (0.5, 99.5)
    workers: int = Field(2, ge=1)
    # One files/pNN folder of a MIMIC-layout source ("" = all): partitions are ingested apart and merged
    # with `cxr ingest merge` (README "Partitioned ingest").
    partition: str = ""
    dicom_phi: str = Field("quarantine", pattern="^(quarantine|flag)$")
    shard_size: int = Field(2048, ge=1)
    split: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    split_seed: int = 0
    # Where the images live when apart from the tables/reports (a MIMIC-CXR-JPG download next to the
    # MIMIC-CXR reports, Open-I PNGs unpacked elsewhere); None: under `input`.
    image_root: str | None = None
    # false: a study without usable images is kept for its report (text-only corpora: Open-I XMLs,
    # MIMIC-CXR reports alone); text stages use it, image stages only see studies with images.
    require_images: bool = True
    # Under frontal_only, an image whose view no header, code sequence or table gives: keep (trust a
    # source that lists frontal images only) or quarantine (view_unknown: only proven frontals).
    unknown_view: str = Field("keep", pattern="^(keep|quarantine)$")
    # Reference label files read when present, first that labels a study wins (components/ingest/references.py).
    reference_labels: list[str] = Field(default_factory=lambda: list(_reference_files()))
    # Caps checked from the header before anything is decoded or inflated (deflate / PNG / JPEG bombs
    # are quarantined as image_too_large). A large CR is ~4300x3500 16-bit (15 Mpx, 30 MB): wide margins.
    max_image_pixels: int = Field(100_000_000, ge=1)  # per frame
    max_image_bytes: int = Field(512 * 2**20, ge=1)  # decoded (or inflated) bytes of one file
    # A report file or cell larger than this is not a report (a pasted log, a mis-linked blob); it is
    # quarantined as report_too_large without being read whole.
    max_report_bytes: int = Field(1 << 20, ge=1)

    @model_validator(mode="after")
    def _check(self):
        unknown = set(self.reference_labels) - set(_reference_files())
        if unknown:
            raise ValueError(f"unknown reference label files {sorted(unknown)}; known: {list(_reference_files())}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; choose one of {', '.join(SOURCES)}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if set(self.split) != {"train", "val", "test"} or abs(sum(self.split.values()) - 1) > 1e-6:
            raise ValueError(f"split needs train/val/test fractions summing to 1, got {self.split}")
        return self


def _reference_files():
    from components.ingest.references import KNOWN

    return KNOWN


class QualityParams(_Section):
    """Bounds the Great Expectations suite holds the cleaned table to (components/quality)."""

    # Shorter than this is not a report (a stray header, "___"); longer is a concatenation accident.
    min_chars: int = Field(10, ge=0)
    max_chars: int = Field(20000, ge=1)
    # Share of rows with a findings or impression section; below it, section parsing is broken.
    # Unsectioned notes (terse templates, abbreviated notes) are legitimate, hence well below 1.
    min_section_coverage: float = Field(0.6, ge=0, le=1)
    # Share per split among the rows whose split this pipeline assigned (ingest.split): catches a lost
    # or collapsed split. Official splits (MIMIC-CXR's validate/test are each under 2% of studies;
    # CheXpert Plus has no test split) are not held to these, only checked for patient leakage.
    split_bounds: dict[str, tuple[float, float]] = Field(default_factory=lambda: {
        "train": (0.6, 0.95), "val": (0.02, 0.25), "test": (0.02, 0.25)})
    # Share of rows whose text equals another row's: templated normals repeat, but a high rate
    # means duplicated studies or a normalisation that erases content.
    max_duplicate_text_rate: float = Field(0.2, ge=0, le=1)
    # A failed suite stops `cxr clean` with a non-zero exit (so `dvc repro` stops where Dagster's
    # blocking check does); false only reports the failure, for exploring data the suite rejects.
    blocking: bool = True


class CleanParams(_Section):
    input: str = "data/ingested"
    out: str = "data/clean"
    metrics: str = "data/metrics/clean.json"
    workers: int = Field(1, ge=1)
    # Text PHI: quarantine the study, redact it in place, or trust upstream de-identification (the
    # blocking PHI check still verifies the output either way).
    phi_policy: str = Field("quarantine", pattern="^(quarantine|redact|off)$")
    # DICOMs that ingest kept with identifying header values (ingest.dicom_phi=flag): quarantine the
    # study, or keep it and record which attributes must be stripped before release.
    dicom_phi: str = Field("quarantine", pattern="^(quarantine|record)$")
    expand_abbreviations: bool = False  # label and store the text with unambiguous abbreviations expanded
    max_report_chars: int = Field(20000, ge=100)  # longer input is not a report (a pasted log, a 10 MB blob)
    # PHI kinds (components/privacy/phi.py KINDS) that count as PHI, here and in the blocking check.
    # HIPAA Safe Harbor lists dates (except the year), not times of day, and real de-identified
    # reports keep clock times ("discussed at 10:15"): "time" is left out by default.
    phi_kinds: list[str] = Field(default_factory=lambda: list(_default_phi_kinds()))
    quality: QualityParams = QualityParams()

    @model_validator(mode="after")
    def _known_kinds(self):
        from components.privacy.phi import KINDS

        unknown = set(self.phi_kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PHI kinds {sorted(unknown)}; known: {list(KINDS)}")
        return self


def _default_phi_kinds():
    from components.privacy.phi import DEFAULT_KINDS

    return DEFAULT_KINDS
