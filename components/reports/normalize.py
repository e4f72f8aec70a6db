"""Normalise report text without changing its clinical meaning.

Order matters for idempotence: every step that changes line lengths (placeholders, boilerplate,
whitespace) runs before hard wraps are joined, so a second pass sees exactly what the first produced.
Notification lines ("Dr. ___ was notified at 10:15 ...") are deliberately kept: they carry PHI that
the privacy step must see, and removing them here would hide it from that step's audit.
"""

from __future__ import annotations

import re
import unicodedata

from components.reports.sections import header_only, is_structural, unwrap

DEID_TOKEN = "[DEID]"  # the one de-identification placeholder every source's tokens become

# Curly quotes, primes and dashes that NFKC leaves alone, folded to ASCII.
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2022": "-", "\t": " ", "\u00a0": " ",
})
# Control and invisible characters (keeping \n); \r is handled first as a line ending.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u00ad]")
# MIMIC-II/III "[** ... **]", MIMIC-CXR "___" (2+), Open-I "XXXX" (3+ capital X as its own token,
# also inside "XXXX-year-old"), and the token itself so repeated passes are stable.
# Written to start with a character class ("[", "_" or "X"), which the regex engine scans for quickly.
_PLACEHOLDER = re.compile(r"[\[_X](?:(?<=\[)\*\*.*?\*\*\]|(?<=_)_+|(?<=X)(?<![A-Za-z0-9]X)XX+(?![A-Za-z0-9])"
                          r"|(?<=\[)DEID\])")
# Sign-off boilerplate: from the cue to the end of its paragraph (attestations come last).
_BOILERPLATE = re.compile(
    r"(?:^|(?<=[.;:!?] ))(?:I have (?:personally )?reviewed (?:the|these|this) (?:images?|study|examination)"
    r"|Electronically signed(?: by)?|(?:Dictated|Transcribed|Signed|Verified|Approved) by\b"
    r"|This report (?:was|has been) (?:electronically )?(?:finalized|signed)|Attending radiologist:)"
    r".*$", re.IGNORECASE | re.MULTILINE)
# "1)", "1.", "1 -" at a line start -> "1. " (not "1.5 cm", not the range "2 - 3 mm").
_BOILERPLATE_CUES = ("reviewed", "signed", "dictated", "transcribed", "verified", "approved", "finalized",
                     "attending")
_LIST_NUMBER = re.compile(r"^(\d{1,2})(?:[.)](?:\s+|(?=[A-Za-z]))|\s-\s*(?=[A-Za-z]))", re.MULTILINE)
_INLINE_NUMBER = re.compile(r"([.;:] \d{1,2})\)(?= [A-Za-z])")  # "... 2) Effusion." inside a line
_SPACES = re.compile(r"[ ]{2,}")
_LINE_EDGES = re.compile(r" ?\n ?")
_BLANKS = re.compile(r"\n{3,}")


def normalize_report(text: str) -> str:
    """Clean report text: NFKC, ASCII quotes/dashes, one placeholder token, no sign-off boilerplate,
    wrapped lines joined into paragraphs, list items as "1. ", single spaces; idempotent."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n")).translate(_FOLD)
    # Wraps are found on the lines as written (their widths include MIMIC's double spaces), ...
    text, joined = _unwrap(_CONTROL.sub("", text))
    text = _PLACEHOLDER.sub(DEID_TOKEN, text)
    low = text.lower()
    if any(cue in low for cue in _BOILERPLATE_CUES):  # a cheap scan first: most reports have no sign-off
        text = _BOILERPLATE.sub("", text)
    text = _LIST_NUMBER.sub(r"\1. ", _LINE_EDGES.sub("\n", _SPACES.sub(" ", text)).strip(" "))
    # ... and looked for again once nothing else changes a width, so a second pass finds none.
    text = _INLINE_NUMBER.sub(r"\1.", text)
    if not joined:  # a joined text has paragraph breaks between all its prose lines: nothing to find
        text = _unwrap(text)[0]
    text = _BLANKS.sub("\n\n", text).strip("\n")
    return text + "\n" if text else ""


def _unwrap(text: str) -> tuple[str, bool]:
    lines, joined = unwrap(text)
    if joined:
        # A kept break between two prose lines of a wrapped text was a real one: make it a paragraph
        # break, so a second pass (whose widest line is now a joined paragraph) cannot join it.
        out: list[str] = []
        for line in lines:
            if out and out[-1] and line and not is_structural(line) and not header_only(out[-1]):
                out.append("")
            out.append(line)
        lines = out
    return "\n".join(lines), joined


def count_placeholders(text: str) -> int:
    """De-identification placeholders in raw or normalised text."""
    return len(_PLACEHOLDER.findall(text))
