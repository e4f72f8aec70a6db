"""Rule-based PHI detection in radiology report text, for the de-identification gate.

Compiled regexes, one per pattern family, each tagged with a PHI kind. Candidates are pooled, those
touching a de-identification placeholder ("___", "XXXX", "[DEID]", "[** ... **]") are dropped (the
text is already scrubbed there), and overlaps are resolved longest-first. Names are found only where
the context says "person": a title or credential suffix, or a trigger phrase ("discussed with",
"paged", "per") followed by capitalized words that are not clinical vocabulary (data/clinical_terms.txt).
The name lists in data/names.json only strengthen title-less cases; they are never required.

Values are never logged or returned: callers get (kind, start, end) spans into their own text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

KINDS = ("person_name", "date", "time", "phone", "fax", "email", "mrn", "accession", "age_over_89",
         "street_address", "url")
# What counts as PHI unless params say otherwise (clean.phi_kinds): HIPAA Safe Harbor's identifiers.
# Times of day are not among them, and de-identified releases (MIMIC-CXR) keep them.
DEFAULT_KINDS = tuple(k for k in KINDS if k != "time")


@dataclass(frozen=True)
class PhiSpan:
    kind: str
    start: int
    end: int


@lru_cache(maxsize=1)
def lexicon() -> dict:
    lex = json.loads((DATA / "names.json").read_text())
    lex["first"], lex["last"] = set(lex["first"]), set(lex["last"])
    words = (DATA / "clinical_terms.txt").read_text().split("\n")
    lex["clinical"] = {w.lower() for line in words if not line.startswith("#") for w in line.split()}
    return lex


def _alt(words) -> str:
    # Longest first, so an alternative is never cut short by its own prefix ("PhD" / "PA-C" vs "P...").
    return "|".join(sorted(words, key=len, reverse=True))


# A name word: Jane, O'Brien, McDonald, Smith-Jones. Upper-case names (JANE) only after a title.
_TOK = r"(?:[A-Z](?:'[A-Z])?[a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?)"
_CAPS_TOK = r"(?:[A-Z][A-Za-z'-]+)"
_NAME = rf"{_TOK}(?:\s+[A-Z]\.)?(?:[ \t]+{_TOK}){{0,2}}"
_COMMA_FIRST = re.compile(rf",[ \t]*({_TOK})\b")
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_YEAR = r"(?:19|20)\d\d"
_PHONE = r"(?:\(\d{3}\)[ \t]?|\b\d{3}[-. \t])\d{3}[-.]\d{4}\b(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{2,6}\b)?"
_AGE = r"(?:9\d|1[01]\d)"  # 90-119: HIPAA Safe Harbor makes ages over 89 identifying
_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
           "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY").split()
_STATE = rf"(?:{'|'.join(_STATES)})"
_MONTH_CUES = "jan feb mar apr may jun jul aug sep oct nov dec"
_STREET = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|"
           r"Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Plaza|Row)")
# "on the 14th" is a date, "on the 6th rib" is anatomy.
_NOT_ANATOMY = (r"(?![^.;\n]{0,30}?\b(?:ribs?|intercostal|vertebrae?|vertebral|thoracic|lumbar|cervical|level|"
                r"space|costal|digit|finger|toe|percentile|day|week|postoperative|hospital)\b)")

# (kind, gate, pattern). The span is group "v" when the pattern has one, else the whole match. The gate
# lists lowercase cue substrings, one of which must be in the text for the regex to run at all: most
# reports hold none of them, and a substring test costs far less than a regex scan ("" = always run).
_RULES: list[tuple[str, str, str]] = [
    ("email", "@", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ("url", "http www.", r"\b(?:https?://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:]"),
    ("url", ".com .org .net .edu .gov .io .us",
     r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|us)\b(?:/[^\s<>\"')\]]*[^\s<>\"')\].,;:])?"),
    ("fax", "fax", rf"(?i:\bfax)(?:\s*(?:#|no\.?|number))?\s*:?\s*(?P<v>{_PHONE})"),
    ("phone", "", _PHONE),
    ("phone", "-", r"\b\d{3}-\d{4}\b(?!-)"),  # local number without area code
    ("phone", "x", r"(?i:\b(?:x|ext\.?|extension))[ \t]?\d{4,5}\b"),  # x4567, not x2
    ("phone", "pag beep pgr bpr",
     r"(?i:\b(?:pager|beeper|pgr|bpr|page[d]?(?:\s+at)?))\s*(?:#|no\.?|number)?\s*:?\s*(?P<v>\d{4,6})\b"),
    # m/d/y needs a year: "1/2", "5/10" are fractions and scores.
    ("date", "/", rf"\b(?:0?[1-9]|1[0-2])/{_DAY}/(?:{_YEAR}|\d\d)\b"),
    ("date", "-", rf"\b(?:0?[1-9]|1[0-2])-{_DAY}-{_YEAR}\b"),  # "5-10-15" could be a range
    ("date", "", rf"\b{_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.]{_DAY}\b"),
    ("date", _MONTH_CUES, rf"\b{_MONTH}\.?[ \t]+{_DAY}(?:st|nd|rd|th)?\b(?:,?[ \t]+{_YEAR}\b)?(?![ \t]*(?:mm|cm)\b)"),
    ("date", _MONTH_CUES, rf"\b{_DAY}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{_MONTH}\b\.?(?:,?[ \t]+{_YEAR}\b)?"),
    ("date", _MONTH_CUES, rf"\b{_MONTH}\.?,?[ \t]+{_YEAR}\b"),
    ("date", "on the", rf"(?i:\bon the )(?P<v>{_DAY}(?:st|nd|rd|th))\b{_NOT_ANATOMY}"),
    ("time", ":", r"\b(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:[ \t]?(?i:[ap]\.m\.|[ap]m\b))?"),
    ("time", "h", r"\b(?:[01]\d|2[0-3])[0-5]\d[ \t]?(?i:hours|hrs|hr|h)\b"),
    ("time", "at @", r"(?i:\b(?:at|@))[ \t]*(?P<v>(?:[01]\d|2[0-3])[0-5]\d)\b(?![ \t]*(?:mm|cm|ml|cc|hu)\b)"),
    ("time", "am pm a.m p.m", r"\b(?:1[0-2]|0?[1-9])[ \t]?(?i:[ap]\.m\.|[ap]m\b)"),
    ("mrn", "mr medical unit id",
     r"(?i:\b(?:MRN|MR[ \t]?#|MR[ \t]?(?:no\.?|number)|medical[ \t]+record(?:[ \t]+(?:number|no\.?|#))?|"
     r"unit[ \t]+(?:no\.?|number)|patient[ \t]+id|pt[ \t]+id))[ \t]*[:#]?[ \t]*(?P<v>[A-Z]{0,3}\d[\d-]{3,}\b)"),
    ("accession", "acc", r"(?i:\b(?:accession|acc)(?:[ \t]*(?:#|no\.?|number|num))?)[ \t]*[:#]?[ \t]*"
                         r"(?P<v>[A-Za-z]{0,3}\d{4,}[A-Za-z\d-]*)\b"),
    ("mrn", "", r"\b\d{7,}\b"),  # no clinical quantity has 7+ digits; IDs do
    ("accession", "", r"\b[A-Z]{1,3}\d{6,}\b"),
    ("age_over_89", "9 10 11",
     rf"\b(?P<v>{_AGE})(?=[ \t-]*(?:years?|yrs?)[ \t-]*old\b|[ \t]*(?:yo|y/o|y\.o\.|yrs?|years?)\b|[MF]\b)"),
    ("age_over_89", "age", rf"(?i:\b(?:age|aged))[ \t:]*(?P<v>{_AGE})\b"),
    ("street_address", "", rf"\b\d{{1,5}}[ \t]+(?:[A-Z][a-z]+[ \t]+){{1,3}}{_STREET}\b\.?"
                           rf"(?:,?[ \t]+(?:Apt|Suite|Unit|#)\.?[ \t]*\w+)?"
                           rf"(?:,[ \t]*[A-Z][a-z]+(?:[ \t][A-Z][a-z]+)*)?(?:,?[ \t]+{_STATE})?"
                           rf"(?:[ \t]+\d{{5}}(?:-\d{{4}})?)?\b"),
    ("street_address", "", rf"\b(?={_STATE}[ \t]+\d{{5}}\b){_STATE}[ \t]+\d{{5}}(?:-\d{{4}})?\b"),  # "MA 02215"
    ("street_address", "box", r"(?i:\bP\.?\s?O\.?\s+Box)\s+\d+\b"),
]


@lru_cache(maxsize=1)
def _compiled():
    lex = lexicon()
    rules = [(kind, gate.split(), re.compile(p)) for kind, gate, p in _RULES]
    titles = rf"\b(?:{_alt(lex['titles'])})\b\.?[ \t]+"
    title = re.compile(rf"{titles}(?P<v>{_NAME}|{_CAPS_TOK}(?:[ \t]+{_CAPS_TOK}){{0,2}})")
    suffix = re.compile(rf"(?P<v>{_NAME}),?[ \t]+(?:{_alt(lex['suffixes'])})(?![A-Za-z])")
    run = re.compile(rf"\b{_NAME}")  # any capitalized run; context decides whether it is a name
    placeholder = re.compile(r"_{2,}|\bX{2,}\b|\[DEID\]|\[\*\*.*?\*\*\]", re.S)
    triggers = {tuple(t.lower().split()) for t in lex["triggers"]}
    return rules, title, suffix, run, placeholder, triggers


@lru_cache(maxsize=1)
def _lead_stop() -> frozenset[str]:
    """Words that may precede a name inside a capitalized run ("Paged Maria Lopez", "Called Jane Holloway, RN")."""
    lex = lexicon()
    return frozenset(lex["clinical"] | {w.lower() for t in lex["triggers"] + lex["titles"] for w in t.split()})


def _name_ok(words: list[str], titled: bool) -> bool:
    """Reject runs of clinical vocabulary; a lone untitled word must be a lexicon name ("per Holloway")."""
    lex = lexicon()
    if not words or any(w.lower() in lex["clinical"] or re.fullmatch(r"X+", w) for w in words):
        return False
    return titled or len(words) > 1 or words[0] in lex["last"] or words[0] in lex["first"]


def _names(text: str):
    """Person-name candidates: after a title, before a credential, after a trigger phrase, or a
    lexicon first name followed by another capitalized word."""
    _, title, suffix, run, _, triggers = _compiled()
    first = lexicon()["first"]
    for rx in (title, suffix):
        for m in rx.finditer(text):
            start, end = m.span("v")
            # Drop sentence words swallowed in front of a credential: "Called Jane Holloway, RN".
            while (w := re.match(r"([A-Za-z']+)[ \t]+", text[start:end])) and w[1].lower() in _lead_stop():
                start += w.end()
            if _name_ok(re.split(r"[\s.-]+", text[start:end].strip(" .")), titled=True):
                yield start, end
    for m in run.finditer(text):
        start, end = m.span()
        before = text[max(0, start - 48):start].lower().replace(":", " ").split()[-5:]
        # A capitalized trigger is part of the run ("Paged Maria Lopez"): move it to the context.
        while (w := re.match(r"([A-Za-z/']+)[ \t]+", text[start:end])) and w[1].lower() in _lead_stop():
            before.append(w[1].lower())
            start += w.end()
        # "Holloway, Jane": a lexicon first name after a comma belongs to the same person.
        if (tail := _COMMA_FIRST.match(text, end)) and tail[1] in first:
            end = tail.end()
        words = re.split(r"[\s.,-]+", text[start:end].strip(" ."))
        triggered = any(tuple(before[i:]) in triggers for i in range(len(before)))
        if (triggered or (len(words) > 1 and words[0] in first)) and _name_ok(words, titled=False):
            yield start, end


def _candidates(text: str):
    rules = _compiled()[0]
    lower = text.lower()
    for order, (kind, gate, rx) in enumerate(rules):
        if gate and not any(g in lower for g in gate):
            continue
        g = "v" if "v" in rx.groupindex else 0
        for m in rx.finditer(text):
            yield kind, m.start(g), m.end(g), order
    for start, end in _names(text):
        yield "person_name", start, end, len(rules)


def detect_phi(text: str, kinds=KINDS) -> list[PhiSpan]:
    """PHI spans of the given kinds (default: every kind the detector knows) in `text`: sorted by
    start, non-overlapping, the longest candidate winning a clash.

    Kinds left out are dropped before overlaps are resolved: a longer span of an ignored kind must
    not hide a date or name inside it.
    """
    placeholder = _compiled()[4]
    masked = [m.span() for m in placeholder.finditer(text)]
    wanted = set(kinds)
    cands = sorted(((k, s, e, o) for k, s, e, o in _candidates(text)
                    if k in wanted and e > s and not any(s < pe and ps < e for ps, pe in masked)),
                   key=lambda c: (-(c[2] - c[1]), c[3], c[1]))
    taken: list[PhiSpan] = []
    for kind, s, e, _ in cands:
        if all(e <= t.start or s >= t.end for t in taken):
            taken.append(PhiSpan(kind, s, e))
    return sorted(taken, key=lambda p: p.start)


def redact(text: str, spans: list[PhiSpan], token: str = "[DEID]") -> str:
    """Replace exactly each span with `token`; the rest of the text is untouched."""
    out, pos = [], 0
    for span in sorted(spans, key=lambda p: p.start):
        if span.start < pos:
            raise ValueError("PHI spans overlap")
        out += [text[pos:span.start], token]
        pos = span.end
    return "".join(out + [text[pos:]])
