"""Radiologists' phrasings the renderer's own sentences lack, written into a finished report so the
pipeline's runs exercise them (issue 12): size words inside negated or-lists, "no X to suggest Y",
exam-limit sentences, healed granulomatous disease, the Edema family's vascular congestion, and
dictation typos the labeler reads. Each rewrite keeps the CheXpert labels of the study's truth.

Choices come from a generator seeded by the text itself, so the renderer's own random stream (and
every report that gets no rewrite) is unchanged. The real-language table in tests/data, not this,
is the evidence of the labeler's accuracy.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from components.synth.truth import StudyTruth

# (rate, pattern, replacement) on whole sentences; the negations of "to suggest" also negate what
# they name, so each is used only when that observation is among the truth's negatives.
_SUGGEST = {
    "Pneumothorax": (r"(?<![\w-])(?:No pneumothorax|There is no pneumothorax)\.", "No pleural line to suggest pneumothorax.", None),
    "Pleural Effusion": (r"(?<![\w-])(?:No pleural effusion|There is no pleural effusion)\.",
                         "No costophrenic angle blunting to suggest effusion.", None),
    "Pneumonia": (r"(?<![\w-])(?:No evidence of pneumonia|No pneumonia)\.", "No focal airspace opacity to suggest pneumonia.",
                  "Lung Opacity"),
}
_NEUTRAL = ("Calcified granulomas are noted.", "Residua of prior granulomatous infection.",
            "Evaluation for pneumothorax is limited by the supine technique.")
_TYPOS = ((r"\bpleural effusion\b", "pleural fusion"), (r"\bpneumothorax\b", "pneumothroax"))
_NEG_LIST = re.compile(r"(?P<lead>\b(?:No|There is no) (?=[^.\n]* or )[^.\n]*?)(?P<eff>\b(?:pleural )?effusion\b)")


def real_phrasings(text: str, truth: StudyTruth, rate: float = 0.15) -> str:
    """`text` with a few of the phrasings above, each drawn at about `rate`."""
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    negatives = set(truth.negatives)
    present = {f.observation for f in truth.findings}
    if rng.random() < 2 * rate:  # "No focal consolidation, large pleural effusion, or pneumothorax."
        text = _NEG_LIST.sub(lambda m: f"{m['lead']}{pick_size(rng)} {m['eff']}", text, count=1)
    for obs, (pattern, new, also) in _SUGGEST.items():
        if obs in negatives and (also is None or also in negatives) and rng.random() < rate:
            text = re.sub(pattern, new, text, count=1)
    if "Edema" in present | negatives and rng.random() < rate:
        text = re.sub(r"\bpulmonary edema\b", "pulmonary vascular congestion", text)
    if rng.random() < rate:
        sentence = _NEUTRAL[int(rng.integers(len(_NEUTRAL)))]
        if "pneumothorax" not in sentence or "Pneumothorax" not in present:
            text = _append_to_findings(text, sentence)
    if rng.random() < rate / 3:
        pattern, typo = _TYPOS[int(rng.integers(len(_TYPOS)))]
        text = re.sub(pattern, typo, text, count=1)
    return text


def pick_size(rng: np.random.Generator) -> str:
    return ("large", "significant", "moderate or large")[int(rng.integers(3))]


def _append_to_findings(text: str, sentence: str) -> str:
    """At the end of the findings section when there is one before the impression, else of the text."""
    findings = re.search(r"FINDINGS:", text)
    cut = re.search(r"\n\s*IMPRESSION:", text[findings.end():]) if findings else None
    at = findings.end() + cut.start() if cut else len(text.rstrip("\n"))
    return f"{text[:at].rstrip()} {sentence}{text[at:]}"
