"""A CheXpert-labeler / NegBio-style rule labeler for the 14 CheXpert observations.

Pipeline, as in the CheXpert labeler: (1) extract mentions with per-observation phrase lists,
dropping "unmention" phrases that only look like mentions; (2) classify each mention as
negative or uncertain from negation / uncertainty cues in its scope, or drop it when an
indication or history cue reaches it (ConText's INDICATION / HISTORICAL: "evaluation for
pneumothorax is limited", "history of pneumonia" say nothing of this image); (3) aggregate per
observation: any positive -> 1, else any uncertain -> -1, else any negative -> 0, else blank,
and No Finding = 1 iff no pathology is positive or uncertain.

Scope without a dependency parser (NegBio's job): cues never cross a hard clause boundary
(sentence end, ";", "but", "which", ...). Within a clause, list separators ("," "or" "and"
"with") cut it into chunks; a pre-cue reaches forwards and a post-cue backwards across chunks
only while each chunk reads as a bare list item ("no focal consolidation, pleural effusion, or
pneumothorax"), not a new statement ("no pneumothorax, small left effusion"); size and side words
start a new statement only outside an or-list ("no consolidation, large effusion, or pneumothorax"
is one negated list). The nearest cue wins, and a post-cue does not reach back over a pre-cue
("opacity may represent atelectasis versus pneumonia": "versus" hedges the differential, not the
opacity). This engine was measured against medspacy's ConText and negspacy's NegEx on the
real-language table (bench/labeler.py --context) and kept on the result.

Every phrase and cue is data under data/labeler/*.yaml. Each list is compiled once into a
single regex and run over the whole report, so labelling is a few dozen C-level scans plus
bisects per report, not a Python loop over phrases (several thousand reports/s on one core).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterable

import yaml

from components.chexpert import NEGATIVE, OBSERVATIONS, PATHOLOGIES, POSITIVE, UNCERTAIN

DATA_DIR = Path(__file__).parent / "data" / "labeler"
_STATUS_VALUE = {"positive": POSITIVE, "uncertain": UNCERTAIN, "negative": NEGATIVE}
_PRIORITY = {"positive": 2, "uncertain": 1, "negative": 0}  # CheXpert aggregation order
_STATUS_OF = {v: k for k, v in _STATUS_VALUE.items()}


@dataclass
class LabelResult:
    labels: dict[str, float | None]  # all 14 observations: 1.0, 0.0, -1.0 or None (blank)
    laterality: dict[str, str] = field(default_factory=dict)  # obs -> left | right | bilateral
    severity: dict[str, str] = field(default_factory=dict)  # obs -> small | moderate | mild | ...
    mentions: list[tuple[str, int, int, str]] = field(default_factory=list)  # (obs, start, end, status)


def phrase_regex(patterns: Iterable[str]) -> re.Pattern:
    """One alternation over whole-word, lower-case phrases, run on lower-cased text (no IGNORECASE:
    it makes these scans ~2.5x slower); a space matches any whitespace run (hard wraps), " ?" an
    optional one.

    Longer phrases go first so "no evidence of" is preferred to "no" at the same position.
    """
    alts = sorted(set(patterns), key=len, reverse=True)
    body = "|".join("(?:" + p.replace(" ?", r"\s*").replace(" ", r"\s+") + ")" for p in alts)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)")


def _load(name: str) -> dict:
    with open(DATA_DIR / name, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    for key, value in data.items():  # YAML reads an unquoted `no` as False, "a(?: b)" as a mapping
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name}: {key}: every pattern must be a string (quote it): {value}")
        if isinstance(value, list) and any(re.sub(r"\\.", "", v) != re.sub(r"\\.", "", v).lower() for v in value):
            raise ValueError(f"{name}: {key}: patterns run on lower-cased text; write them in lower case")
    return data


@dataclass(frozen=True)
class _Rules:
    mentions: dict[str, re.Pattern]
    unmentions: dict[str, re.Pattern]
    normal: dict[str, re.Pattern]
    cues: dict[str, re.Pattern]  # neg_pre, neg_list, neg_post, neg_pseudo, unc_pre, unc_post, indication, history
    hard: re.Pattern
    soft: re.Pattern
    breakers: re.Pattern
    list_breakers: re.Pattern
    or_words: re.Pattern
    max_item_words: int
    skip_header: re.Pattern
    one_sentence: re.Pattern
    laterality: re.Pattern  # one named group per side
    lat_exclude: re.Pattern
    severity: re.Pattern
    severity_norm: dict[str, str]


@lru_cache(maxsize=1)
def rules() -> _Rules:
    """Compile the data files once per process."""
    mentions, unmentions, normal = _load("mentions.yaml"), _load("unmentions.yaml"), _load("normal.yaml")
    neg, unc, scope, mods = _load("negation.yaml"), _load("uncertainty.yaml"), _load("scope.yaml"), _load("modifiers.yaml")
    context = _load("context.yaml")
    unknown = (set(mentions) | set(unmentions) | set(normal)) - set(OBSERVATIONS)
    if unknown:
        raise ValueError(f"labeler data names unknown observations: {sorted(unknown)}")

    def side_alt(words):  # lower-case words in any case; "L"/"R" only as written
        return "|".join(f"(?i:{re.escape(w)})" if w.islower() else re.escape(w) for w in words)

    lat = "|".join(f"(?P<{side}>(?<!\\w)(?:{side_alt(words)})(?!\\w))" for side, words in mods["laterality"].items())
    sev_norm = {w: base for base, words in mods["severity"].items() for w in words}
    sev_word = "|".join(sorted(map(re.escape, sev_norm), key=len, reverse=True))
    return _Rules(
        mentions={o: phrase_regex(p) for o, p in mentions.items()},
        unmentions={o: phrase_regex(p) for o, p in unmentions.items()},
        normal={o: phrase_regex(p) for o, p in normal.items()},
        cues={"neg_pre": phrase_regex(neg["pre"]), "neg_list": phrase_regex(neg["pre_list"]),
              "neg_post": phrase_regex(neg["post"]), "neg_pseudo": phrase_regex(neg["pseudo"]),
              "unc_pre": phrase_regex(unc["pre"]), "unc_post": phrase_regex(unc["post"]),
              "indication": phrase_regex(context["indication"]), "history": phrase_regex(context["history"])},
        hard=re.compile("|".join(scope["hard"])),
        soft=re.compile("|".join(scope["soft"])),
        breakers=phrase_regex(scope["breakers"]),
        list_breakers=phrase_regex(scope["list_breakers"]),
        or_words=re.compile(scope["or_words"]),
        max_item_words=int(scope["max_list_item_words"]),
        skip_header=re.compile(rf"(?im)^[ \t]*(?:{scope['skip_sections']})[ \t]*:"),
        one_sentence=re.compile(rf"(?i)(?:{scope['one_sentence_sections']})[ \t]*:"),
        laterality=re.compile(lat),
        lat_exclude=phrase_regex([mods["laterality_exclude"]]),
        severity=re.compile(rf"(?<!\w)(?:{sev_word})(?:(?:\s+to\s+|-to-|-)(?:{sev_word}))?(?!\w)"),
        severity_norm=sev_norm,
    )


# A skipped section ends at the next header (at a line start, or a findings/impression header
# inline, as in one-line reports), a blank line, or a line-ending full stop ("Hx: cough.").
_SECTION_END = re.compile(r"(?m)(?P<stop>\.[ \t]*$)|\n[ \t\r]*\n|^[ \t]*[A-Za-z][A-Za-z /()&-]{0,40}:"
                          r"|(?i:\b(?:findings|impression|conclusions?)[ \t]*:)")
_SENTENCE_END = re.compile(r"(?P<stop>\.)(?=[ \t]+[A-Z])")  # ends a one-sentence section inline
_PLACEHOLDER = re.compile(r"\[\*\*.*?\*\*\]|\[(?:deid|redacted)\]|_{2,}|(?<![A-Za-z])[Xx]{3,}(?![A-Za-z])",
                          re.IGNORECASE)


def _prepare(text: str) -> str:
    """Blank (same length, so offsets stay valid) de-id placeholders and non-image sections."""
    chars = list(text)
    for m in _PLACEHOLDER.finditer(text):
        chars[m.start():m.end()] = " " * (m.end() - m.start())
    for m in rules().skip_header.finditer(text):
        n = _SECTION_END.search(text, m.end())
        if rules().one_sentence.match(text, m.start() + len(text[m.start():m.end()]) - len(text[m.start():m.end()].lstrip())):
            dot = _SENTENCE_END.search(text, m.end(), n.start() if n else len(text))
            n = dot or n
        end = len(text) if n is None else n.end() if n.group("stop") else n.start()
        chars[m.start():end] = " " * (end - m.start())
    return "".join(chars)


def _spans(pattern: re.Pattern, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def _drop_overlapped(cues: list[tuple[int, int]], others: list[tuple[int, int]], strict: bool):
    """Drop cues overlapped by a longer other cue (or an equal one when not strict)."""
    def beaten(s, e):
        return any(os < e and s < oe and ((oe - os) > (e - s) or (not strict and oe - os == e - s))
                   for os, oe in others)
    return [c for c in cues if not beaten(*c)]


class _Doc:
    """One report's boundaries, cues and attribute words, queried per mention with bisects."""

    def __init__(self, text: str, low: str):
        r = rules()
        self.text, self.low, self.r = text, low, r
        self.hard = [m.start() for m in r.hard.finditer(low)]
        self.chunks = sorted(set(self.hard + [m.start() for m in r.soft.finditer(low)]))
        self.breakers = [m.start() for m in r.breakers.finditer(low)]
        self.list_breakers = [m.start() for m in r.list_breakers.finditer(low)]
        self.ors = [m.start() for m in r.or_words.finditer(low)]
        c = {k: _spans(p, low) for k, p in r.cues.items()}
        pseudo = c["neg_pseudo"]  # "no change in": not a negation; drop the cues it contains
        if pseudo:
            for k in ("neg_pre", "neg_list", "neg_post"):
                c[k] = [(s, e) for s, e in c[k] if not any(ps <= s and e <= pe for ps, pe in pseudo)]
        neg, unc = c["neg_pre"] + c["neg_list"] + c["neg_post"], c["unc_pre"] + c["unc_post"]
        ctx = c["indication"] + c["history"]
        # Double negation: "cannot exclude" (uncertain) contains "not"; the longer cue wins, and so
        # does "no opacity to suggest" over "suggest", "if there is concern for" over "concern for".
        keep_neg = set(_drop_overlapped(_drop_overlapped(neg, unc, False), ctx, True))
        keep_unc = set(_drop_overlapped(_drop_overlapped(unc, neg, True), ctx, True))
        keep_ctx = set(_drop_overlapped(ctx, neg + unc, True))
        pre = [(s, e, "negative") for s, e in c["neg_pre"] + c["neg_list"] if (s, e) in keep_neg]
        pre += [(s, e, "uncertain") for s, e in c["unc_pre"] if (s, e) in keep_unc]
        pre += [(s, e, "indication") for s, e in c["indication"] if (s, e) in keep_ctx]
        pre += [(s, e, "history") for s, e in c["history"] if (s, e) in keep_ctx]
        self.pre = sorted(pre)
        self.list_spans = [(s, e) for s, e in c["neg_list"] if (s, e) in keep_neg]
        self.post = sorted([(s, e, "negative") for s, e in c["neg_post"] if (s, e) in keep_neg]
                           + [(s, e, "uncertain") for s, e in c["unc_post"] if (s, e) in keep_unc])
        self.pre_starts = [p[0] for p in self.pre]
        self.post_starts = [p[0] for p in self.post]
        self._item: dict[int, bool] = {}

    def _chunk(self, pos: int) -> int:
        return bisect_right(self.chunks, pos)

    def _chunk_span(self, i: int) -> tuple[int, int]:
        return (self.chunks[i - 1] if i else 0), (self.chunks[i] if i < len(self.chunks) else len(self.low))

    @staticmethod
    def _any(positions: list[int], a: int, b: int) -> bool:
        return bisect_left(positions, a) < bisect_left(positions, b)

    def _is_list_item(self, i: int, or_list: bool) -> bool:
        """Chunk i is a bare list item a cue's scope may run through: short and no breaker word
        (size and side words are allowed in an or-list)."""
        key = (i, or_list)
        if key not in self._item:
            a, b = self._chunk_span(i)
            broken = self._any(self.breakers, a, b) or (not or_list and self._any(self.list_breakers, a, b))
            words = self.low[a:b].replace(",", " ").split()
            if words and self.r.soft.fullmatch(words[0]):  # the separator opening the chunk is no word of it
                words = words[1:]
            self._item[key] = not broken and len(words) <= self.r.max_item_words
        return self._item[key]

    def _reaches(self, cue_pos: int, mention_pos: int) -> bool:
        """Same hard clause, and every chunk strictly after the earlier one is a list item."""
        lo, hi = sorted((cue_pos, mention_pos))
        clause = bisect_right(self.hard, lo)
        if clause != bisect_right(self.hard, hi):
            return False
        end = self.hard[clause] if clause < len(self.hard) else len(self.low)
        or_list = self._any(self.ors, lo, end)
        first, last = self._chunk(lo), self._chunk(hi)
        if cue_pos < mention_pos:  # pre-cue: chunks after the cue's, through the mention's
            return all(self._is_list_item(i, or_list) for i in range(first + 1, last + 1))
        return all(self._is_list_item(i, or_list) for i in range(first, last))  # post: mention's up to the cue's

    def status(self, s: int, e: int) -> str:
        if any(a <= s and e <= b for a, b in self.list_spans):  # an item of "no A or B to suggest C"
            return "negative"
        found = set()
        i = bisect_left(self.pre_starts, e) - 1  # nearest pre-cue starting before the mention ends
        while i >= 0 and self.pre[i][1] > e:  # a cue running past the mention is not before it
            i -= 1
        if i >= 0 and self._reaches(self.pre[i][1] - 1, s):  # from the cue's end: a list cue spans items
            found.add(self.pre[i][2])
        j = bisect_left(self.post_starts, s)  # nearest post-cue starting at or after the mention
        while j < len(self.post) and self.post[j][0] < e:  # skip cues inside the mention itself
            j += 1
        # ... unless a pre-cue stands between: it owns what follows ("may represent A versus B")
        if j < len(self.post) and not self._any(self.pre_starts, e, self.post[j][0]) \
                and self._reaches(self.post[j][0], s):
            found.add(self.post[j][2])
        for status in ("uncertain", "negative", "indication", "history"):
            if status in found:
                return status
        return "positive"

    def attribute(self, kind: str, s: int, e: int, prev_end: int, next_start: int) -> str | None:
        """Laterality or severity stated in the mention's chunk: before it (and in it) first, then after."""
        a, b = self._chunk_span(self._chunk(s))
        for lo, hi, nearest in ((max(a, prev_end), e, -1), (e, min(max(b, e), next_start), 0)):
            words = self._words(kind, lo, hi)
            if words:
                return _merge_sides(words) if kind == "laterality" else words[nearest]
        return None

    @cached_property
    def _attr_words(self) -> dict[str, list[tuple[int, str]]]:
        """(position, word) of every side and severity word; only built when a finding is positive."""
        r, excluded = self.r, _spans(self.r.lat_exclude, self.low)
        sides = [(m.start(), m.lastgroup) for m in r.laterality.finditer(self.text)
                 if not any(x <= m.start() < y for x, y in excluded)]
        sev = [(m.start(), " to ".join(r.severity_norm[w] for w in re.split(r"\s+to\s+|-to-|-", m.group())))
               for m in r.severity.finditer(self.low)]
        return {"laterality": sides, "severity": sev}

    def _words(self, kind: str, lo: int, hi: int) -> list[str]:
        items = self._attr_words[kind]
        starts = [p for p, _ in items]
        return [w for _, w in items[bisect_left(starts, lo):bisect_left(starts, hi)]]


def _merge_sides(sides: Iterable[str]) -> str:
    found = set(sides)
    return "bilateral" if "bilateral" in found or {"left", "right"} <= found else found.pop()


def _lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)  # keep offsets ("İ")


def _blank() -> LabelResult:
    return LabelResult(labels={o: None for o in OBSERVATIONS})


def find_mentions(text: str | None) -> tuple[str, list[tuple[int, int, str, str | None]]]:
    """The text as the labeler reads it (placeholders and preamble sections blanked, same offsets)
    and its mentions (start, end, observation, fixed status or None), in order. The scope step is
    separate, so another scope algorithm can be measured on the same mentions (bench/labeler_context.py)."""
    if not text or not text.strip():
        return "", []
    r = rules()
    prepared = _prepare(text)
    low = _lower(prepared)
    if not re.search(r"[a-z]", low):
        return prepared, []
    found: list[tuple[int, int, str, str | None]] = []
    for obs, pattern in r.mentions.items():
        spans = _spans(pattern, low)
        if spans and obs in r.unmentions:
            not_mentions = _spans(r.unmentions[obs], low)
            spans = [(s, e) for s, e in spans if not any(us <= s and e <= ue for us, ue in not_mentions)]
        found += [(s, e, obs, None) for s, e in spans]
    for obs, pattern in r.normal.items():  # "heart size is normal": a negative mention as a whole
        found += [(s, e, obs, "negative") for s, e in _spans(pattern, low)]
    found.sort(key=lambda f: f[:3])
    return prepared, found


def labels_from(statuses: Iterable[tuple[str, str]]) -> dict[str, float | None]:
    """CheXpert aggregation of (observation, status) pairs; indication / history mentions count for nothing."""
    labels: dict[str, float | None] = {o: None for o in OBSERVATIONS}
    for obs, status in statuses:
        if status in _PRIORITY and (labels[obs] is None or _PRIORITY[status] > _PRIORITY[_STATUS_OF[labels[obs]]]):
            labels[obs] = _STATUS_VALUE[status]
    if not any(labels[o] in (POSITIVE, UNCERTAIN) for o in PATHOLOGIES):
        labels["No Finding"] = POSITIVE
    return labels


def label_report(text: str | None) -> LabelResult:
    """Label one report's findings + impression (raw text is tolerated; see _prepare)."""
    prepared, found = find_mentions(text)
    if not found:
        result = _blank()
        if prepared and re.search(r"[a-z]", _lower(prepared)):
            result.labels["No Finding"] = POSITIVE
        return result
    low = _lower(prepared)
    doc = _Doc(prepared, low)
    result = _blank()
    for k, (s, e, obs, fixed) in enumerate(found):
        status = fixed or doc.status(s, e)
        result.mentions.append((obs, s, e, status))
        if fixed is None and status in ("positive", "uncertain"):  # attributes of findings only
            prev_end = max((pe for ps, pe, *_ in found[:k] if pe <= s), default=0)
            next_start = next((ns for ns, *_ in found[k + 1:] if ns >= e), len(low))
            side = doc.attribute("laterality", s, e, prev_end, next_start)
            if side:
                result.laterality[obs] = _merge_sides([result.laterality.get(obs, side), side])
            sev = doc.attribute("severity", s, e, prev_end, next_start)
            if sev:
                result.severity.setdefault(obs, sev)
    result.labels = labels_from((obs, status) for obs, _, _, status in result.mentions)
    return result


def label_reports(texts: Iterable[str | None]) -> list[LabelResult]:
    return [label_report(t) for t in texts]
