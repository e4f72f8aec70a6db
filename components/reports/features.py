"""Style features of one report: how it is written, not what it finds.

Hedging and comparison cues are counted in the labelable text only (findings + impression): an
indication such as "? pneumonia, compare with prior" says nothing about how the radiologist wrote.
"""

from __future__ import annotations

import re

from components.reports.abbreviations import AbbreviationHit
from components.reports.normalize import count_placeholders
from components.reports.sections import ParsedReport, labelable_text

# Hedge cues: single words (counted per word) and phrases (counted as substrings of the lower-cased
# text): word and substring counts are far faster than one regex of every cue.
HEDGE_WORDS = frozenset({"possible", "possibly", "likely", "unlikely", "probable", "probably", "questionable",
                         "suggestive", "suggest", "suggests", "suggesting", "suspicious", "suspected", "equivocal",
                         "versus", "vs", "presumed", "presumably", "uncertain", "indeterminate"})
HEDGE_PHRASES = ("cannot exclude", "cannot be excluded", "can not be excluded", "cannot be ruled out",
                 "cannot rule out", "not excluded", "may represent", "may reflect", "may be due to",
                 "might represent", "could represent", "could reflect", "could be", "concerning for",
                 "question of", "differential diagnosis", "differential includes", "not entirely clear")
COMPARISON_WORDS = frozenset({"unchanged", "stable", "stably", "interval", "compared", "comparison", "prior",
                              "previous", "previously", "new", "newly", "again", "persistent", "persists",
                              "resolved", "resolving", "improved", "improving", "worsened", "worsening",
                              "increased", "increasing", "decreased", "decreasing", "since", "change", "changed"})
_WORD = re.compile(r"[A-Za-z0-9]+(?:['/-][A-Za-z0-9]+)*")
_QUERY = re.compile(r"(?<![\w?])\?(?=\s?[A-Za-z])")  # "?pneumonia", "? PNA": a hedge, not a question
# "1. ..." starting a line (even a single item), or "1. ... 2. ..." inline; never "1.5 cm".
_NUMBERED = re.compile(r"(?:^|\n)[ \t]*1[.)]\s+\S|(?:^|\s)1[.)]\s+\S.*?\s2[.)]\s+\S", re.DOTALL)


def style_features(text: str, parsed: ParsedReport, hits: list[AbbreviationHit]) -> dict:
    """abbreviation_count / _density (per 100 words; units such as "cm" not counted),
    ambiguous_abbreviations (keys), impression_only, findings_only, n_chars, n_words, hedging (cue
    count), comparison (bool), numbered_impression (bool), deid_tokens (placeholder count)."""
    body = labelable_text(parsed).lower()
    body_words = _WORD.findall(body)
    n_words = len(_WORD.findall(text))
    counted = [h for h in hits if not h.keep]
    impression = parsed.sections.get("impression", "")
    return {
        "abbreviation_count": len(counted),
        "abbreviation_density": round(100.0 * len(counted) / n_words, 3) if n_words else 0.0,
        "ambiguous_abbreviations": sorted({h.key for h in counted if h.ambiguous}),
        "impression_only": parsed.impression_only,
        "findings_only": parsed.findings_only,
        "n_chars": len(text),
        "n_words": n_words,
        "hedging": sum(w in HEDGE_WORDS for w in body_words) + sum(body.count(p) for p in HEDGE_PHRASES)
        + (len(_QUERY.findall(body)) if "?" in body else 0),
        "comparison": not COMPARISON_WORDS.isdisjoint(body_words),
        "numbered_impression": "1" in impression and bool(_NUMBERED.search(impression)),
        "deid_tokens": count_placeholders(text),
    }
