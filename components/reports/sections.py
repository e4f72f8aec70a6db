"""Split a free-text chest X-ray report into canonical sections.

Handles MIMIC-CXR (centred "FINAL REPORT", "WET READ" blocks, addenda, hard-wrapped lines with leading
spaces), CheXpert Plus and Open-I (source-given section dicts win) and terse notes without headers.

Decisions:
- INDICATION / REASON FOR EXAM(INATION) -> `indication` (why the study was ordered); HISTORY / CLINICAL
  HISTORY / Hx -> `history` (background). Neither is ever labelable: both name the suspected disease.
- FINDINGS AND IMPRESSION / FINDINGS/IMPRESSION -> `impression`, with `merged_findings_impression` set.
- "Short" sections (indication, history, technique, comparison, examination) hold one logical line: the
  header's own, or the next one when the header stands alone; text after them without a header goes to `other`,
  which is how bodies without FINDINGS/IMPRESSION headers ("Hx: ...\\nNo PTX.") are kept out of history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

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

_WET_READ = re.compile(r"wet read(?: version ?#?\d+)?")  # "WET READ VERSION #1"
_MAX_WORDS = max(len(k.split()) for k in SYNONYMS) + 2
_LIST_ITEM = re.compile(r"\d{1,2}\s?[.)]\s|\d{1,2}\s-\s*[A-Za-z]|[-*\u2022]\s")
_SEPARATOR = re.compile(r"^[ \t]*(?:_{8,}|-{8,}|={8,})[ \t]*$", re.MULTILINE)
_SPACES = re.compile(r"[ \t]+")
_RUNS = re.compile(r"[ \t]{2,}|\t")  # what _SPACES changes, without rewriting every single space
_SENTENCE_END = re.compile(r"[.?!:]$")


@dataclass
class ParsedReport:
    sections: dict[str, str] = field(default_factory=dict)  # canonical name -> text, only non-empty ones
    headers: list[str] = field(default_factory=list)  # headers as written, in order (or the given keys)
    impression_only: bool = False  # impression present, findings absent (and not a merged section)
    findings_only: bool = False  # findings present, impression absent
    merged_findings_impression: bool = False  # a FINDINGS AND IMPRESSION section, kept in `impression`
    given: bool = False  # sections came from the source, not from parsing


def canonical(header: str) -> str:
    key = " ".join(header.lower().split())
    return "wet_read" if _WET_READ.fullmatch(key) else SYNONYMS.get(key, "other")


def _is_header_name(words: str) -> bool:
    key = words.lower()
    return key in SYNONYMS or bool(key.startswith("wet read") and _WET_READ.fullmatch(key))


@lru_cache(maxsize=8192)
def header_matches(line: str) -> tuple[tuple[int, int, str], ...]:
    """Accepted headers in one logical (space-collapsed) line as (start, end, written); `end` is past
    the colon. Dictionary look-ups on the words before each colon: much faster than one regex of
    every synonym, which would be tried at every character of every report."""
    if ":" not in line:
        # Without a colon only a header in CAPITALS alone on its line: "IMPRESSION", "FINAL REPORT".
        return ((0, len(line), line),) if line.isupper() and _is_header_name(line) else ()
    out: list[tuple[int, int, str]] = []
    colon = line.find(":")
    while colon >= 0:
        before = line[:colon].rstrip()
        words = before.split(" ")
        for k in range(min(_MAX_WORDS, len(words)), 0, -1):  # longest name first: "CLINICAL HISTORY"
            written = " ".join(words[-k:])
            if _is_header_name(written):
                start = len(before) - len(written)
                lead = line[:start].rstrip()
                # At a line start any case ("Impression :"); inline only in CAPS or after a sentence.
                if not lead or written.isupper() or lead[-1] in ".;":
                    out.append((start, colon + 1, written))
                break
        colon = line.find(":", colon + 1)
    return tuple(out)


def is_structural(line: str) -> bool:
    """A line that must stay on its own line: a header at its start or a list item."""
    return bool(_LIST_ITEM.match(line)) or _starts_with_header(line)


def logical_lines(text: str) -> list[str]:
    """Stripped, space-collapsed lines with hard wraps joined back; '' marks a blank line."""
    return unwrap(text)[0]


def unwrap(text: str) -> tuple[list[str], bool]:
    """(logical lines, whether any hard wrap was joined).

    A line continues onto the next when the next line's first word would not have fitted within the
    widest line of the text: exactly when a word-wrapper breaks. Widths are measured on the lines as
    written (MIMIC indents a space and doubles spaces after periods). A text whose widest line is over
    100 characters is not hard-wrapped; headers and list items always start a line. A break between
    sentences ("...chest pain.\\nModerate ...") is joined only when some break inside a sentence proves
    the text is wrapped: an unwrapped note's widest line would otherwise swallow the next one.
    """
    if "____" in text or "----" in text or "====" in text:
        text = _SEPARATOR.sub("", text)
    written = text.split("\n")
    lines = [line.strip() for line in _RUNS.sub(" ", text).split("\n")]
    # Centred titles ("   FINAL REPORT") are not wrapped text: they do not set the width.
    width = max((len(w.rstrip()) for w in written if not w.startswith("   ")), default=0)
    if width > 100 or len(lines) < 2:
        return lines, False
    joins = [False] * len(lines)  # joins[i]: line i continues line i - 1
    proven = False
    for i in range(1, len(lines)):
        prev, line = lines[i - 1], lines[i]
        if (prev and line and len(written[i - 1].rstrip()) + 1 + len(line.split(" ", 1)[0]) > width
                and not is_structural(line) and not header_only(prev)):
            ended = bool(_SENTENCE_END.search(prev))
            # "HISTORY: 60M with fever." is complete: what follows is the next section's body, not more
            # history, even where that line happens to be the widest.
            joins[i] = not (ended and _starts_with_header(prev))
            proven = proven or not ended
    if not proven:
        joins = [False] * len(lines)
    out: list[str] = []
    for line, join in zip(lines, joins):
        if join and out:
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out, any(joins)


def _starts_with_header(line: str) -> bool:
    ms = header_matches(line)
    return bool(ms) and ms[0][0] == 0


def header_only(line: str) -> bool:
    ms = header_matches(line)
    return bool(ms) and ms[0][0] == 0 and not line[ms[0][1]:].strip()


def parse_sections(text: str, given: dict[str, str] | None = None) -> ParsedReport:
    """Canonical sections of a report; non-empty source-given sections win over parsing."""
    if given and any((v or "").strip() for v in given.values()):
        return _from_given(given)
    parts: dict[str, list[str]] = {}
    headers: list[str] = []
    merged = False
    current = "other"
    for line in logical_lines(text):
        if not line:
            continue  # blank lines end nothing: findings run over paragraphs, short sections end below
        pos, name = 0, current
        for start, end, written in header_matches(line):
            if start > pos:
                parts.setdefault(name, []).append(line[pos:start].strip())
            headers.append(written)
            merged |= written.lower() in MERGED
            name, pos = canonical(written), end
        rest = line[pos:].strip()
        if rest:
            parts.setdefault(name, []).append(rest)
        # A short section is one logical line: its header's, or the next one when the header stands alone.
        current = "other" if name in SHORT and rest else name
    sections = {k: "\n".join(p for p in v if p) for k, v in parts.items()}
    return _finish({k: sections[k] for k in CANONICAL if sections.get(k)}, headers, merged, given=False)


def _from_given(given: dict[str, str]) -> ParsedReport:
    parts: dict[str, list[str]] = {}
    for key, value in given.items():
        value = "\n".join(s for s in (_SPACES.sub(" ", line).strip() for line in (value or "").split("\n")) if s)
        if value:
            k = key.strip().lower()
            parts.setdefault(GIVEN_KEYS.get(k) or canonical(k.replace("_", " ")), []).append(value)
    sections = {k: "\n".join(parts[k]) for k in CANONICAL if k in parts}
    merged = any(k.strip().lower().replace("_", " ") in MERGED for k in given)
    return _finish(sections, list(given), merged, given=True)


def _finish(sections: dict[str, str], headers: list[str], merged: bool, given: bool) -> ParsedReport:
    f, i = "findings" in sections, "impression" in sections
    return ParsedReport(sections=sections, headers=headers, impression_only=i and not f and not merged,
                        findings_only=f and not i, merged_findings_impression=merged, given=given)


# Unheaded lines that state why the study was done ("Eval for pneumonia.", "? PNA", "r/o PTX").
INDICATION_LINE = re.compile(r"^(?:eval(?:uate|uation)?\b|r/o\b|rule out\b|assess(?:ment)? for\b|\?|"
                              r"reason\b|indication\b|history\b|comparison\b)", re.IGNORECASE)


def labelable_text(parsed: ParsedReport) -> str:
    """What a labeler reads: findings + impression (+ addendum); else the unheaded text minus any
    indication-like line. Never the indication or history: they name the disease being ruled out."""
    s = parsed.sections
    if "findings" in s or "impression" in s:
        return "\n".join(s[k] for k in LABELABLE if k in s)
    lines = [line for line in s.get("other", "").split("\n") if line and not INDICATION_LINE.match(line)]
    return "\n".join(lines + ([s["addendum"]] if "addendum" in s else []))
