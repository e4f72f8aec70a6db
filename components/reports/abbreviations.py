"""Find and expand radiology abbreviations from the editable lexicon in data/abbreviations.yaml.

Matching is case-sensitive, each accepted casing listed as a form ("PA" is an abbreviation, "pa" is
not), on whole tokens only, longest form first ("NG tube" before "NG", "L>R" before "L"). Ambiguous entries
("RA": right atrium / room air / rheumatoid arthritis) are reported but only expanded when one of
their `resolve` rules fits the surrounding words; otherwise they are left exactly as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

import yaml

LEXICON_PATH = Path(__file__).parent / "data" / "abbreviations.yaml"
_CONTEXT = 40  # characters of context a resolve rule sees on each side


@dataclass(frozen=True, slots=True)
class AbbreviationHit:
    abbr: str  # as written
    key: str  # the lexicon's canonical key
    expansion: str | None  # None when ambiguous and unresolved
    ambiguous: bool
    start: int
    end: int
    keep: bool = False  # a unit such as "cm": counted, never expanded


@dataclass(frozen=True)
class Entry:
    key: str
    expansion: str | None  # the one meaning (None when ambiguous)
    candidates: tuple[str, ...]
    ambiguous: bool
    keep: bool
    resolve: tuple[tuple[str, re.Pattern | None, re.Pattern | None], ...]  # (expansion, before, after)


# Candidate tokens: a run of letters, with "/x" or ">x" ("b/l", "w/o", "L>R"), a trailing "/" before a
# word ("w/effusion"), or a "?" before a word ("?PNA"). "PA/lat" is two tokens, "PA/" and "lat".
_TOKEN = re.compile(r"[A-Za-z]+(?:/[A-Za-z]?(?![A-Za-z])|/(?=[A-Za-z])|>[A-Za-z](?![A-Za-z]))?"
                    r"|(?<![\w?])\?(?=\s?[A-Za-z])")
_ROUGH = re.compile(r"([A-Za-z?][A-Za-z/>?]*)")
Form = tuple[int, "re.Pattern | None", str]  # (length, what must follow the first token, key)


@dataclass(frozen=True)
class Lexicon:
    entries: dict[str, Entry]  # key -> entry
    forms: dict[str, list[Form]]  # first token as written -> forms starting with it, longest first


def _form(form: str, key: str, followed_by: str | None) -> tuple[str, Form]:
    """Split a written form into its first token and a regex for the rest ("CP angle": "CP", then "angle")."""
    m = _TOKEN.match(form)
    first = m.group() if m else form  # "?" alone: the token regex wants a word after it
    rest = r"\s+".join(re.escape(part) for part in form[len(first):].split(" ")) if form[len(first):] else ""
    tail = r"(?![A-Za-z0-9])" if rest and form[-1].isalnum() else ""
    ctx = f"(?={followed_by.removeprefix('^')})" if followed_by else ""
    after = rest + tail + ctx
    return first, (len(form), re.compile(after) if after else None, key)


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Read and compile a lexicon file (default: the packaged data/abbreviations.yaml)."""
    where = path or LEXICON_PATH
    raw = yaml.safe_load(Path(where).read_text(encoding="utf-8")) or []
    entries: dict[str, Entry] = {}
    forms: dict[str, list[Form]] = {}
    for item in raw:
        key = str(item["abbr"])
        candidates = tuple(item.get("expansions") or [item.get("expansion")])
        ambiguous = bool(item.get("ambiguous")) or len(candidates) > 1
        if key in entries:
            raise ValueError(f"{where}: duplicate abbreviation {key!r}")
        if not all(candidates):
            raise ValueError(f"{where}: {key!r} has no expansion")
        rules = tuple((r["expansion"], re.compile(r["before"], re.I) if r.get("before") else None,
                       re.compile(r["after"], re.I) if r.get("after") else None) for r in item.get("resolve", ()))
        entries[key] = Entry(key, None if ambiguous else candidates[0], candidates, ambiguous,
                             bool(item.get("keep")), rules)
        for written in item.get("forms") or [key]:
            first, form = _form(str(written), key, item.get("followed_by"))
            forms.setdefault(first, []).append(form)
    for options in forms.values():
        options.sort(key=lambda f: -f[0])
    return Lexicon(entries, forms)


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return load_lexicon()


def _resolve(entry: Entry, text: str, start: int, end: int) -> str | None:
    if not entry.ambiguous:
        return entry.expansion
    before, after = text[max(0, start - _CONTEXT):start], text[end:end + _CONTEXT]
    for expansion, b, a in entry.resolve:
        if (b is None or b.search(before)) and (a is None or a.search(after)):
            return expansion
    return None


def _candidates(text: str, keys) -> list[tuple[int, str]]:
    """(start, token) for tokens that may start a form. One C-level split and set look-ups instead of
    a Python step per word (most words are not abbreviations); only the rare runs with "/", ">" or
    "?" are split precisely."""
    parts = _ROUGH.split(text)  # [gap, token, gap, token, ..., gap]
    ends = list(accumulate(map(len, parts)))
    out = []
    for start, token in zip(ends[0::2], parts[1::2]):
        if token in keys:
            out.append((start, token))
        elif not token.isalpha():
            for p in _TOKEN.finditer(text, start):
                if p.start() >= start + len(token):
                    break
                out.append((p.start(), p.group()))
    return out


def find_abbreviations(text: str, lexicon: Lexicon | None = None) -> list[AbbreviationHit]:
    """Every lexicon abbreviation in `text`, in order, with its expansion where it is unambiguous."""
    lex = lexicon or default_lexicon()
    forms = lex.forms
    hits: list[AbbreviationHit] = []
    done = 0  # end of the last hit: a multi-word form ("CP angle") covers the tokens after it
    for start, token in _candidates(text, forms):
        options = forms.get(token)
        if options is None and token[-1] == "/":  # "PA/" of "PA/lat"
            token = token[:-1]
            options = forms.get(token)
        if options is None or start < done:
            continue
        for _, after, key in options:
            end = start + len(token)
            if after is not None:
                follow = after.match(text, end)
                if not follow:
                    continue
                end = follow.end()
            entry = lex.entries[key]
            hits.append(AbbreviationHit(text[start:end], key, _resolve(entry, text, start, end),
                                        entry.ambiguous, start, end, entry.keep))
            done = end
            break
    return hits


# Capitalise after ".", "!" or ":" and at a line or list-item start; not after "?" ("? PTX" is a hedge).
_SENTENCE_START = re.compile(r"(?:^|[.!:]\s+|\n\s*(?:\d{1,2}\.\s+)?)$")


def expand_abbreviations(text: str, lexicon: Lexicon | None = None) -> str:
    """`text` with every unambiguous (or context-resolved) abbreviation written out; units and
    unresolved ambiguous ones are left as written. Capitalised at the start of a sentence."""
    out, pos = [], 0
    for hit in find_abbreviations(text, lexicon):
        if hit.expansion is None or hit.keep:
            continue
        word = hit.expansion
        if _SENTENCE_START.search(text, max(0, hit.start - 6), hit.start):
            word = word[:1].upper() + word[1:]
        if text[hit.end:hit.end + 1].isalnum():
            word += " "  # "?PNA" -> "questionable pneumonia"
        out += [text[pos:hit.start], word]
        pos = hit.end
    return "".join(out) + text[pos:]
