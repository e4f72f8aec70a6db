"""Split a free-text chest X-ray report into canonical sections.

Handles MIMIC-CXR (centred "FINAL REPORT", "WET READ" blocks, addenda, hard-wrapped lines with leading
spaces), CheXpert Plus and Open-I (source-given section dicts win) and terse notes without headers.

Decisions:
- INDICATION / REASON FOR EXAM(INATION) -> `indication` (why the study was ordered); HISTORY / CLINICAL
  HISTORY / Hx -> `history` (background). Neither is ever labelable: both name the suspected disease.
- FINDINGS AND IMPRESSION / FINDINGS/IMPRESSION -> `impression`, with `merged_findings_impression` set.
- "Short" sections (indication, history, technique, comparison, examination) hold one logical line, or
  the paragraph below a header alone on its line; text after them without a header goes to `other`,
  which is how bodies without FINDINGS/IMPRESSION headers ("Hx: ...\\nNo PTX.") are kept out of history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The canonical section names, in reading order. `other` holds text under no recognised header
# (preamble, exam line, unheaded body); `wet_read` is MIMIC's preliminary read, superseded by the
# final report; `notification` and `recommendation` are kept apart so they never read as findings.
CANONICAL: tuple[str, ...] = ("other", "wet_read", "examination", "indication", "history", "technique",
                              "comparison", "findings", "impression", "recommendation", "notification",
                              "addendum")

# Header as written (lower case, single spaces) -> canonical name.
SYNONYMS: dict[str, str] = {
    "final report": "other", "preliminary report": "other", "end of impression": "other",
    "wet read": "wet_read", "provisional findings impression (pfi)": "wet_read",
    "examination": "examination", "exam": "examination", "examinations": "examination",
    "type of examination": "examination", "study": "examination", "procedure": "examination",
    "indication": "indication", "indications": "indication", "clinical indication": "indication",
    "reason for exam": "indication", "reason for examination": "indication",
    "reason for this examination": "indication", "reason for study": "indication",
    "history": "history", "clinical history": "history", "hx": "history", "clinical information": "history",
    "medical condition": "history", "patient history": "history", "social history": "history",
    "technique": "technique", "procedure comments": "technique",
    "comparison": "comparison", "comparisons": "comparison", "comparison exam": "comparison",
    "comparison study": "comparison", "comp": "comparison", "prior studies": "comparison",
    "findings": "findings", "finding": "findings",
    "impression": "impression", "impressions": "impression", "conclusion": "impression",
    "conclusions": "impression", "opinion": "impression", "summary": "impression",
    "findings and impression": "impression", "findings/impression": "impression",
    "impression and findings": "impression",
    "recommendation": "recommendation", "recommendations": "recommendation",
    "recommendation(s)": "recommendation", "notification": "notification", "addendum": "addendum",
    "final addendum": "addendum",
}
MERGED = {"findings and impression", "findings/impression", "impression and findings"}
SHORT = {"indication", "history", "technique", "comparison", "examination"}
LABELABLE = ("findings", "impression", "addendum")

# Source-given section keys (CheXpert Plus, Open-I) that the header table does not cover. CheXpert
# Plus's `summary` holds Stanford triage codes and `end_of_impression` the sign-off: not findings.
GIVEN_KEYS = {"narrative": "other", "summary": "other", "end_of_impression": "other",
              "procedure_comments": "technique", "clinical_history": "history"}

_alts = sorted(SYNONYMS, key=len, reverse=True)  # longest first: "FINDINGS AND IMPRESSION" before "FINDINGS"
_ALT = "|".join(re.escape(a).replace(r"\ ", r"[ \t]+") for a in _alts).replace("wet[ \\t]+read",
                                                                               r"wet[ \t]+read(?:[ \t]+version[ \t]*\#?\d+)?")
# A header candidate: the name, then a colon, or nothing else up to the end of the line.
_HEADER = re.compile(rf"(?<![\w/-])({_ALT})(?:[ \t]*:|(?=[ \t]*$))", re.IGNORECASE | re.MULTILINE)
_LIST_ITEM = re.compile(r"\d{1,2}\s?[.)]\s|\d{1,2}\s-\s|[-*\u2022]\s")
_SEPARATOR = re.compile(r"^[ \t]*(?:_{8,}|-{8,}|={8,})[ \t]*$", re.MULTILINE)
_SPACES = re.compile(r"[ \t]+")


@dataclass
class ParsedReport:
    sections: dict[str, str] = field(default_factory=dict)  # canonical name -> text, only non-empty ones
    headers: list[str] = field(default_factory=list)  # headers as written, in order (or the given keys)
    impression_only: bool = False  # impression present, findings absent (and not a merged section)
    findings_only: bool = False  # findings present, impression absent
    merged_findings_impression: bool = False  # a FINDINGS AND IMPRESSION section, kept in `impression`
    given: bool = False  # sections came from the source, not from parsing


def _canonical(header: str) -> str:
    key = _SPACES.sub(" ", header.strip().lower())
    return "wet_read" if key.startswith("wet read") else SYNONYMS.get(key, "other")


def header_matches(line: str) -> list[re.Match]:
    """Accepted header matches in one logical line (see module docstring for the rules)."""
    out = []
    for m in _HEADER.finditer(line):
        before, written = line[:m.start()], m.group(1)
        colon = m.group(0).rstrip().endswith(":")
        if not before.strip():
            # At line start: "Impression:" in any case; without a colon only CAPS alone on its line.
            if colon or (written.isupper() and not line[m.end():].strip()):
                out.append(m)
        elif colon and (written.isupper() or before.rstrip()[-1:] in ".;"):
            out.append(m)  # inline "... no effusion. IMPRESSION: ..."; lower case only after a sentence
    return out


def is_structural(line: str) -> bool:
    """A line that must stay on its own line: a header at its start or a list item."""
    s = line.lstrip()
    if _LIST_ITEM.match(s):
        return True
    m = _HEADER.match(s)
    return bool(m and header_matches(s[:m.end()] + s[m.end():]) and header_matches(s)[0].start() == 0)


def logical_lines(text: str) -> list[str]:
    """Stripped lines with hard wraps joined back; '' marks a blank line.

    A line continues onto the next when the next line's first word would not have fitted within the
    widest line of the text (how a word-wrapper breaks). Texts whose widest line is over 100
    characters are not hard-wrapped; headers and list items always start a line.
    """
    raw = [_SPACES.sub(" ", line).strip() for line in _SEPARATOR.sub("", text).split("\n")]
    width = max((len(line) + 1 for line in raw), default=0)  # +1: MIMIC and synth wraps indent a space
    if width > 101:
        return raw
    out: list[str] = []
    for line in raw:
        prev = out[-1] if out else ""
        if (prev and line and len(prev) + 2 + len(line.split(" ", 1)[0]) > width
                and not is_structural(line) and not _header_only(prev)):
            out[-1] = f"{prev} {line}"
        else:
            out.append(line)
    return out


def _header_only(line: str) -> bool:
    ms = header_matches(line)
    return bool(ms) and ms[0].start() == 0 and not line[ms[0].end():].strip()


def parse_sections(text: str, given: dict[str, str] | None = None) -> ParsedReport:
    """Canonical sections of a report; non-empty source-given sections win over parsing."""
    if given and any((v or "").strip() for v in given.values()):
        return _from_given(given)
    parts: dict[str, list[str]] = {}
    headers: list[str] = []
    merged = False
    current, fresh = "other", True  # fresh: the current short section has no content yet
    for line in logical_lines(text):
        if not line:
            if current in SHORT and not fresh:
                current = "other"
            continue
        pos, name = 0, current
        for m in header_matches(line):
            if m.start() > pos:
                parts.setdefault(name, []).append(line[pos:m.start()].strip())
            written = _SPACES.sub(" ", m.group(1))
            headers.append(written)
            merged |= written.lower() in MERGED
            name, pos = _canonical(written), m.end()
        rest = line[pos:].strip()
        if rest:
            parts.setdefault(name, []).append(rest)
        current, fresh = name, not rest and pos > 0
        if name in SHORT and rest:
            current = "other"  # a short section is one line when its content shares the header line
    sections = {k: "\n".join(p for p in v if p) for k, v in parts.items()}
    return _finish({k: sections[k] for k in CANONICAL if sections.get(k)}, headers, merged, given=False)


def _from_given(given: dict[str, str]) -> ParsedReport:
    parts: dict[str, list[str]] = {}
    for key, value in given.items():
        value = "\n".join(s for s in (_SPACES.sub(" ", line).strip() for line in (value or "").split("\n")) if s)
        if value:
            k = key.strip().lower()
            parts.setdefault(GIVEN_KEYS.get(k) or _canonical(k.replace("_", " ")), []).append(value)
    sections = {k: "\n".join(parts[k]) for k in CANONICAL if k in parts}
    merged = any(k.strip().lower().replace("_", " ") in MERGED for k in given)
    return _finish(sections, list(given), merged, given=True)


def _finish(sections: dict[str, str], headers: list[str], merged: bool, given: bool) -> ParsedReport:
    f, i = "findings" in sections, "impression" in sections
    return ParsedReport(sections=sections, headers=headers, impression_only=i and not f and not merged,
                        findings_only=f and not i, merged_findings_impression=merged, given=given)


# Unheaded lines that state why the study was done ("Eval for pneumonia.", "? PNA", "r/o PTX").
_INDICATION_LINE = re.compile(r"^(?:eval(?:uate|uation)?\b|r/o\b|rule out\b|assess(?:ment)? for\b|\?|"
                              r"reason\b|indication\b|history\b|comparison\b)", re.IGNORECASE)


def labelable_text(parsed: ParsedReport) -> str:
    """What a labeler reads: findings + impression (+ addendum); else the unheaded text minus any
    indication-like line. Never the indication or history: they name the disease being ruled out."""
    s = parsed.sections
    if "findings" in s or "impression" in s:
        return "\n".join(s[k] for k in LABELABLE if k in s)
    lines = [line for line in s.get("other", "").split("\n") if line and not _INDICATION_LINE.match(line)]
    return "\n".join(lines + ([s["addendum"]] if "addendum" in s else []))
