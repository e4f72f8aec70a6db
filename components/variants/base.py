"""The contract every variant backend implements, and the names of variant kinds and error categories."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Rewrites that keep the clinical content (positives for contrastive training).
EQUIVALENT_KINDS = (
    "paraphrase",            # same findings, different wording
    "abbreviation",          # contract full terms to abbreviations, or expand abbreviations
    "split",                 # findings-only or impression-only part of a sectioned report
    "omission",              # drop non-essential sentences (normal statements), never a positive finding
    "anatomical_partition",  # regroup sentences by anatomy: lungs, pleura, heart/mediastinum, bones, devices, other
    "shuffle",               # reorder sentences
    "style_transfer",        # terse <-> verbose
)
# The 9 categories of radiology report errors; an error variant carries exactly one.
ERROR_CATEGORIES = (
    "severity",           # small -> large, mild -> severe
    "location",           # left <-> right, upper <-> lower lobe
    "false_prediction",   # a finding that is not there
    "false_negation",     # negate a positive, or affirm a negative
    "measurement",        # 4 cm -> 7 cm
    "opposite_sentence",  # a sentence replaced by its clinical opposite
    "add_device",         # a device that is not there
    "device_name",        # one device named as another
    "device_position",    # a device tip somewhere else
)
ERROR_KIND = "error"


@dataclass(frozen=True)
class VariantRequest:
    """One variant to produce from one clean report."""

    study_id: str
    text: str  # the clean report text
    kind: str  # one of EQUIVALENT_KINDS, or ERROR_KIND
    error_category: str | None = None  # one of ERROR_CATEGORIES when kind == ERROR_KIND
    seed: int = 0
    labels: dict[str, float | None] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Variant:
    """What a backend returns for a request; `text` None means it could not produce one."""

    text: str | None
    detail: str = ""  # what changed, e.g. "left -> right" (no PHI: reports are de-identified upstream)
    changed_span: tuple[int, int] | None = None  # where in `text` the error was made
    failure: str | None = None  # why no text: a short reason code (not_applicable, http_429, timeout ...)


class Backend(Protocol):
    name: str  # rules | hf | openai
    model: str  # model id or path ("rules" for the rules backend)
    prompt_version: str  # version of the prompt files used ("rules-<n>" for rules)

    def generate(self, requests: list[VariantRequest]) -> list[Variant]: ...
