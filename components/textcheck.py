"""Is this string a report at all? Binary blobs and random characters are quarantined, not cleaned.

Radiology reports are natural language in a Latin script: mostly letters, digits, spaces and
punctuation, with words of a few letters. Random Unicode (symbols, unassigned or private code points,
a soup of scripts) and binary (control characters) fail one of three plain measures below. Accented
Latin letters (a French or German report) pass; the thresholds leave wide room for tables and lists.
"""

from __future__ import annotations

import re
import unicodedata

_MIN_LATIN_SHARE = 0.85  # letters, digits, spaces, punctuation of the Latin script / ASCII
_MAX_CONTROL_SHARE = 0.01  # control, unassigned, private-use, surrogate characters
_MIN_WORD_SHARE = 0.5  # share of non-space characters inside runs of 2+ letters
_WORD = re.compile(r"[^\W\d_]{2,}")


def _latin(ch: str) -> bool:
    if ch.isascii():
        return ch.isprintable() or ch in "\t\n\r\f"
    cat = unicodedata.category(ch)
    if cat.startswith("L"):
        return "LATIN" in unicodedata.name(ch, "")
    return cat in ("Zs", "Pd", "Pi", "Pf", "Po", "Ps", "Pe", "Sc", "Sm", "No")  # ° ± – “ ” µ ½ ...


def text_problem(text: str) -> str | None:
    """Why `text` is not a natural-language report (the reason detail), or None when it is."""
    sample = text[:20000]  # enough to judge; keeps the check linear in a bounded prefix
    if not sample.strip():
        return None  # emptiness has its own reason code
    n = len(sample)
    control = sum(1 for ch in sample if unicodedata.category(ch) in ("Cc", "Cn", "Co", "Cs")
                  and ch not in "\t\n\r\f")
    if control / n > _MAX_CONTROL_SHARE:
        return f"{control} control or unassigned characters in {n} (binary?)"
    latin = sum(1 for ch in sample if _latin(ch))
    if latin / n < _MIN_LATIN_SHARE:
        return f"only {latin / n:.0%} of characters are Latin letters, digits or punctuation"
    visible = sum(1 for ch in sample if not ch.isspace())
    in_words = sum(len(m) for m in _WORD.findall(sample))
    if visible and in_words / visible < _MIN_WORD_SHARE:
        return f"only {in_words / visible:.0%} of characters form words"
    return None
