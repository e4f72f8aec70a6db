"""The offline, deterministic `rules` variant backend.

Every variant depends only on (text, kind, error category, seed): randomness comes from
`np.random.default_rng` seeded with a BLAKE2 hash of those four, never from Python's hash().

How it works. A clean report is cut into `Doc` pieces: static text (preamble sections, headers,
list numbers, spaces) and the sentences of the sections a labeler reads (findings, impression,
addendum; or the unheaded body of an unsectioned note). Kinds rewrite, drop, reorder or add
sentences (rules_equivalent.py, rules_errors.py) with lexicons from data/*.yaml.

Every edited sentence is re-labelled on its own with the project's labeler (cached per sentence
string). That is sound because the labeler's negation, hedge and attribute scopes never cross a
sentence end, so a report's labels are the aggregate of its sentences' labels. An equivalent
rewrite of a sentence that would change what the labeler reads is reverted; an error edit is kept
only when the report-level aggregate shows exactly the intended change. When nothing applies, the
variant is `Variant(None, failure="not_applicable", detail=why)`.

The gate reads device mentions with `components.variants.devices.device_mentions`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from components.chexpert import OBSERVATIONS
from components.reports.labeler import LabelResult, label_report
from components.reports.sections import SHORT, INDICATION_LINE, canonical, header_matches
from components.variants.base import Variant, VariantRequest

DATA_DIR = Path(__file__).parent / "data"
FINDINGS = tuple(o for o in OBSERVATIONS if o != "No Finding")  # No Finding is derived, never edited
_PRIORITY = {1.0: 2, -1.0: 1, 0.0: 0}
LABELABLE = ("findings", "impression", "addendum")


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    """A data file under data/ (cached per process)."""
    return yaml.safe_load((DATA_DIR / name).read_text(encoding="utf-8"))


def request_rng(request: VariantRequest) -> np.random.Generator:
    """A generator seeded by a stable hash of (text, kind, error category, seed)."""
    key = "\x1f".join((request.text, request.kind, request.error_category or "", str(request.seed)))
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest(), "little"))


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def not_applicable(why: str) -> Variant:
    return Variant(text=None, failure="not_applicable", detail=why)


# --------------------------------------------------------------------------- sentence labels


@lru_cache(maxsize=65536)
def sentence_labels(sentence: str) -> LabelResult:
    """The labeler's reading of one sentence (cached: report sentences repeat a lot)."""
    return label_report(sentence)


def findings_of(result: LabelResult) -> dict[str, float]:
    """Observations (No Finding aside) the labeler gave a value to."""
    return {o: v for o, v in result.labels.items() if v is not None and o != "No Finding"}


@dataclass
class Reading:
    """Report-level labels, laterality and severity aggregated from sentence readings, in order."""

    labels: dict[str, float]
    laterality: dict[str, str]
    severity: dict[str, str]


def aggregate(results) -> Reading:
    labels: dict[str, float] = {}
    lat: dict[str, str] = {}
    sev: dict[str, str] = {}
    for r in results:
        for o, v in findings_of(r).items():
            if o not in labels or _PRIORITY[v] > _PRIORITY[labels[o]]:
                labels[o] = v
        for o, side in r.laterality.items():
            lat[o] = side if o not in lat or lat[o] == side else "bilateral"
        for o, s in r.severity.items():
            sev.setdefault(o, s)
    return Reading(labels, lat, sev)


def same_reading(a: LabelResult, b: LabelResult) -> bool:
    """Equivalent sentences: same labels (negatives included), laterality and severity."""
    return findings_of(a) == findings_of(b) and a.laterality == b.laterality and a.severity == b.severity


# --------------------------------------------------------------------------- the document model

# A sentence ends at ".", "!" or "?" before a space or the end (not "vs.", "Dr.", "e.g.", "2.1").
_SENTENCE = re.compile(r"\S.*?(?:(?<!\bvs)(?<!\bDr)(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s|$)|$)")
_LIST_PREFIX = re.compile(r"(?:\d{1,2}\.|[-*])\s+")
_INLINE_NUMBER = re.compile(r"\d{1,2}\.\s+")  # "2. " after a sentence on the same line


@dataclass
class Sentence:
    index: int  # position in Doc.sentences
    text: str
    section: str  # canonical section name
    line: int  # the line it is on
    alone: bool  # the only sentence of a list item line ("2. Small left effusion.")
    listed: bool = False  # on a list item line


class Doc:
    """A report as static pieces and sentences; `render` rebuilds it with edits."""

    def __init__(self, text: str):
        self.text = text
        self.pieces: list[str | Sentence] = []
        self.sentences: list[Sentence] = []
        self.headers: dict[str, str] = {}  # canonical section -> header as written
        lines = text.split("\n")
        segments = []  # (line number, section, text, offset in line)
        current = "other"
        for n, line in enumerate(lines):
            pos, name, parts = 0, current, []
            for start, end, written in header_matches(line) if line.strip() else ():
                parts.append((name, line[pos:start]))
                parts.append((None, line[start:end]))
                name, pos = canonical(written), end
                self.headers.setdefault(name, written)
            parts.append((name, line[pos:]))
            current = "other" if name in SHORT and line[pos:].strip() else name
            segments.append((n, parts))
        sectioned = any(s in self.headers for s in ("findings", "impression"))
        for n, parts in segments:
            if n:
                self.pieces.append("\n")
            for name, body in parts:
                editable = name is not None and (name in LABELABLE if sectioned else name in ("other", "addendum"))
                if editable and name == "other" and INDICATION_LINE.match(body.strip()):
                    editable = False
                if not editable or not body.strip():
                    self.pieces.append(body)
                    continue
                self._split(body, name, n)

    def _split(self, body: str, section: str, line: int) -> None:
        """Sentences of one line's section body; list numbers, at the line start or inline after a
        sentence ("IMPRESSION: 1. Effusion. 2. No pneumothorax."), stay static pieces, so a rewrite
        never moves or drops one."""
        pos, listed, items = 0, False, []  # items: (static text before, sentence match, numbered)
        while True:
            start = len(body) - len(body[pos:].lstrip())
            prefix = _LIST_PREFIX.match(body, start)
            if prefix and (pos == 0 or _INLINE_NUMBER.match(body, start)):
                listed, numbered, stop = True, True, prefix.end()
            else:
                numbered, stop = False, pos
            m = _SENTENCE.search(body, stop)
            if not m or not m.group().strip():
                break
            items.append((body[pos:m.start()], m, numbered))
            pos = m.end()
        owners: list[int] = []  # alone: the only sentence of its list item (dropping it leaves a bare number)
        for k, (_, _, numbered) in enumerate(items):
            owners.append(k if numbered or not owners else owners[-1])
        for (before, m, _), owner in zip(items, owners):
            alone = listed and owners.count(owner) == 1
            self.pieces.append(before)
            s = Sentence(len(self.sentences), m.group(), section, line, alone, listed)
            self.sentences.append(s)
            self.pieces.append(s)
        self.pieces.append(body[pos:])

    # -- queries

    def in_section(self, section: str) -> list[Sentence]:
        return [s for s in self.sentences if s.section == section]

    def sections(self) -> list[str]:
        return list(dict.fromkeys(s.section for s in self.sentences))

    def reading(self, texts: dict[int, str | None] | None = None, extra: tuple[str, ...] = ()) -> Reading:
        """The aggregate reading with sentence `texts` replaced (None drops one) plus `extra` sentences."""
        texts = texts or {}
        out = [texts.get(s.index, s.text) for s in self.sentences]
        return aggregate(sentence_labels(t) for t in list(out) + list(extra) if t)

    # -- rendering

    def render(self, texts: dict[int, str | None] | None = None,
               after: dict[int, str] | None = None) -> tuple[str, dict]:
        """(new text, {key: span}) with a span for every replaced sentence (key: its index) and
        inserted one (key: ("+", i)). `texts[i]` replaces sentence i (None drops it with the space
        before it); `after[i]` inserts a sentence after sentence i (i = -1: before the first one)."""
        texts, after = texts or {}, after or {}
        out: list[str] = []
        spans: dict = {}
        size = 0

        def put(s: str, key=None):
            nonlocal size
            if key is not None:
                spans[key] = (size, size + len(s))
            out.append(s)
            size += len(s)

        first = True
        for piece in self.pieces:
            if isinstance(piece, str):
                put(piece)
                continue
            if first and -1 in after:
                put(after[-1], ("+", -1))
                put(" ")
            first = False
            new = texts.get(piece.index, piece.text)
            if new is None:  # drop it and the space before it
                if len(out) > 1 and out[-1] and not out[-1].strip() and "\n" not in out[-1]:
                    size -= len(out.pop())
                continue
            put(new, piece.index if piece.index in texts and new != piece.text else None)
            if piece.index in after:
                put(" ")
                put(after[piece.index], ("+", piece.index))
        text = "".join(out)
        return _tidy(text, spans)


_TIDY = re.compile(r"(?m)^ +")


def _tidy(text: str, spans):
    """Drop spaces a dropped sentence left at a line start; spans shift with the text."""
    cuts = [(m.start(), m.end() - m.start()) for m in _TIDY.finditer(text)]
    if not cuts:
        return text, spans

    def move(p):
        return p - sum(min(n, max(0, p - at)) for at, n in cuts)

    return _TIDY.sub("", text), {k: (move(a), move(b)) for k, (a, b) in spans.items()}


def span_of(spans: dict) -> tuple[int, int] | None:
    """One span covering every edit."""
    return (min(a for a, _ in spans.values()), max(b for _, b in spans.values())) if spans else None


# --------------------------------------------------------------------------- text helpers


def lower_first(s: str) -> str:
    """Lower-case the first letter unless the first word is an acronym or a side letter ("ETT", "L")."""
    word = s.split(" ", 1)[0]
    if len(word) > 1 and (word.isupper() or any(c.isupper() for c in word[1:]) or any(c.isdigit() for c in word)):
        return s
    if word in ("L", "R"):
        return s
    return s[:1].lower() + s[1:]


def upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


def match_case(written: str, new: str) -> str:
    """`new` in the case of `written`: "Small" -> "Large", "PTX" stays as the lexicon writes it."""
    if written[:1].isupper() and not written.isupper():
        return upper_first(new)
    if written.isupper() and len(written) > 1 and new.islower():
        return new.upper()
    if written[:1].isupper():
        return upper_first(new)
    return new


def ensure_period(s: str) -> str:
    return s if s.endswith((".", "!", "?")) else s + "."
