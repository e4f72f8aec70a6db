"""Equivalent kinds of the rules backend: rewrites that keep every finding the labeler reads.

Each handler takes (Doc, rng, request) and returns a Variant. Sentence rewrites are kept only when
the labeler reads the new sentence exactly as the old one (labels, laterality, severity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from components.reports.abbreviations import expand_abbreviations
from components.reports.sections import parse_sections
from components.variants.base import Variant
from components.variants.devices import lexicon as device_lexicon
from components.variants.rules import (Doc, ensure_period, findings_of, load, lower_first, match_case,
                                       not_applicable, pick, same_reading, sentence_labels, upper_first)

_MASS = {"edema", "atelectasis", "consolidation", "cardiomegaly", "pneumonia", "widening", "thickening",
         "opacification", "fluid", "congestion", "collapse", "scarring", "infiltration", "disease", "process",
         "evidence", "air", "enlargement"}


def _plural(x: str) -> bool:
    word = x.split()[-1].lower() if x.split() else ""
    return word.endswith("s") and not word.endswith(("sis", "xis", "ss", "us", "ics", "ax"))


def _article(x: str, be: str) -> str:
    words = x.split()
    if be == "are" or not words or words[-1].lower() in _MASS or words[0].lower() in ("new", "unchanged", "stable"):
        return ""
    return "an " if words[0][:1].lower() in "aeiou" else "a "


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    to: tuple[str, ...]
    unless: re.Pattern | None

    def apply(self, sentence: str) -> list[str]:
        m = self.pattern.fullmatch(sentence)
        if not m or (self.unless is not None and self.unless.search(sentence)):
            return []
        out = []
        for t in self.to:
            new = _fill(t, m)
            if new.lower() != sentence.lower():
                out.append(new)
        return out


def _fill(template: str, m: re.Match) -> str:
    vals = {}
    for k, v in m.groupdict().items():
        v = v or ""
        vals[k] = lower_first(v) if k != "be" else v.lower()
        vals[k.upper() if len(k) == 1 else k.capitalize()] = upper_first(v)
    x = vals.get("x", "")
    vals.setdefault("be", "are" if _plural(x) else "is")
    vals["a"] = _article(x, vals["be"])
    if "adv" in vals:
        vals["adj"] = vals["adv"][:-2]
        vals["Adj"] = upper_first(vals["adj"])
    elif "adj" in vals:
        vals["adv"] = vals["adj"] + "ly"
    return upper_first(template.format(**vals))


def _rules(items) -> tuple[Rule, ...]:
    return tuple(Rule(re.compile(r["match"], re.I), tuple(r["to"]),
                      re.compile(r["unless"], re.I) if r.get("unless") else None) for r in items)


def _phrase_groups(groups) -> tuple[tuple[re.Pattern, tuple[str, ...]], ...]:
    out = []
    for group in groups:
        alt = "|".join(re.escape(p) for p in sorted(group, key=len, reverse=True))
        out.append((re.compile(rf"(?<![\w/])(?:{alt})(?![\w/])", re.I), tuple(group)))
    return tuple(out)


@lru_cache(maxsize=1)
def _paraphrase():
    data = load("paraphrase.yaml")
    same = {}
    for group in data["equivalent_sentences"]:
        for s in group:
            same[s.lower()] = tuple(o for o in group if o.lower() != s.lower())
    return _rules(data["sentences"]), same, _phrase_groups(data["phrases"])


@lru_cache(maxsize=1)
def _style():
    data = load("style.yaml")
    return _rules(data["terse"]), _rules(data["verbose"]), _phrase_groups(data["terse_phrases"])


@lru_cache(maxsize=1)
def _contractions() -> tuple[re.Pattern, dict]:
    items = sorted(load("contractions.yaml")["contractions"], key=lambda c: -len(c["full"]))
    alts, abbr = [], {}
    for i, c in enumerate(items):
        alts.append(f"(?P<c{i}>{c['full']}){'(?=' + c['before'] + ')' if c.get('before') else ''}")
        abbr[f"c{i}"] = c["abbr"]
    return re.compile(rf"(?i)(?<![\w/-])(?:{'|'.join(alts)})(?![\w/-])"), abbr


def contract(sentence: str) -> str:
    """Every full term of contractions.yaml in `sentence` written as its abbreviation."""
    pattern, abbr = _contractions()
    return pattern.sub(lambda m: abbr[m.lastgroup], sentence)


def _phrase_options(sentence: str, groups) -> list[str]:
    out = []
    for pattern, members in groups:
        for m in pattern.finditer(sentence):
            for other in members:
                if other.lower() != m.group().lower():
                    new = match_case(m.group(), other)
                    out.append(sentence[:m.start()] + new + sentence[m.end():])
    return out


def _keep(old: str, new: str) -> bool:
    return new != old and same_reading(sentence_labels(old), sentence_labels(new))


# --------------------------------------------------------------------------- kinds


def paraphrase(doc: Doc, rng, request) -> Variant:
    rules, same, phrases = _paraphrase()
    options = {}
    for s in doc.sentences:
        opts = [o for r in rules for o in r.apply(s.text)] + list(same.get(s.text.lower(), ()))
        opts += _phrase_options(s.text, phrases)
        if opts:
            options[s.index] = opts
    if not options:
        return not_applicable("no paraphrase rule applies")
    order = list(options)
    rng.shuffle(order)
    target = max(2, (len(order) + 1) // 2)
    texts, changes = {}, 0
    for i in order:
        old = doc.sentences[i].text
        opts = options[i]
        for j in rng.permutation(len(opts))[:3]:
            new = opts[int(j)]
            if _keep(old, new):
                texts[i] = new
                changes += 1
                break
        if changes >= target:
            break
    if not texts:
        return not_applicable("every paraphrase would change the labels")
    text, _ = doc.render(texts)
    return Variant(text, detail=f"{changes} sentence(s) rephrased")


def abbreviation(doc: Doc, rng, request) -> Variant:
    contracted = {s.index: contract(s.text) for s in doc.sentences}
    contracted = {i: t for i, t in contracted.items() if t != doc.sentences[i].text}
    expanded = {s.index: expand_abbreviations(s.text) for s in doc.sentences}
    expanded = {i: t for i, t in expanded.items() if t != doc.sentences[i].text}
    choices = [c for c, d in (("contract", contracted), ("expand", expanded)) if d]
    if not choices:
        return not_applicable("no term to abbreviate and no abbreviation to expand")
    rng.shuffle(choices)
    for how in choices:
        edits = contracted if how == "contract" else expanded
        texts = {i: t for i, t in edits.items() if _keep(doc.sentences[i].text, t)}
        if texts:
            text, _ = doc.render(texts)
            return Variant(text, detail=f"{how}ed abbreviations in {len(texts)} sentence(s)")
    return not_applicable("every abbreviation change would change the labels")


def split(doc: Doc, rng, request) -> Variant:
    parsed = parse_sections(request.text)
    s = parsed.sections
    if parsed.merged_findings_impression or "findings" not in s or "impression" not in s:
        return not_applicable("not a report with both findings and impression sections")
    whole = doc.reading()
    keep = {o: v for o, v in whole.labels.items() if v != 0.0}
    ok = []
    for name in ("findings", "impression"):
        part = doc.reading({x.index: None for x in doc.sentences if x.section != name})
        if {o: v for o, v in part.labels.items() if v != 0.0} == keep and \
                all(part.labels.get(o, 0.0) == 0.0 for o, v in whole.labels.items() if v == 0.0) and \
                part.laterality == whole.laterality and part.severity == whole.severity:
            ok.append(name)
    if not ok:
        return not_applicable("neither section alone carries every finding")
    name = pick(rng, ok)
    return Variant(f"{name.upper()}:\n{s[name]}\n", detail=f"{name} only")


@lru_cache(maxsize=1)
def _omission():
    data = load("omission.yaml")
    return (re.compile("|".join(f"(?:{p})" for p in data["omissible"]), re.I),
            re.compile("|".join(f"(?:{p})" for p in data["keep"]), re.I))


def _omissible(sentence: str) -> bool:
    drop, keep = _omission()
    if not drop.search(sentence) or keep.search(sentence):
        return False
    return not any(v in (1.0, -1.0) for v in findings_of(sentence_labels(sentence)).values())


def omission(doc: Doc, rng, request) -> Variant:
    candidates = []
    for name in doc.sections():
        sents = doc.in_section(name)
        droppable = [s for s in sents if not s.alone and _omissible(s.text)]
        if len(droppable) == len(sents):
            droppable = droppable[:-1]  # a section keeps at least one sentence
        candidates += droppable
    if not candidates:
        return not_applicable("no normal or negative sentence to drop")
    k = 1 + int(rng.integers(len(candidates)))
    chosen = sorted(int(i) for i in rng.choice(len(candidates), size=k, replace=False))
    dropped = [candidates[i] for i in chosen]
    text, _ = doc.render({s.index: None for s in dropped})
    return Variant(text, detail=f"dropped {len(dropped)} sentence(s)")


def shuffle(doc: Doc, rng, request) -> Variant:
    texts = {}
    # A numbered list shuffles its one-sentence items as one block (the numbers stay in place);
    # an item of several sentences stays whole where it is; other lines shuffle on their own.
    blocks: dict = {}
    for s in doc.sentences:
        key = (s.section, "list") if s.listed and s.alone else (s.section, "item", s.index) if s.listed \
            else (s.section, s.line)
        blocks.setdefault(key, []).append(s)
    for sents in blocks.values():
        if len({s.text for s in sents}) < 2:
            continue
        for _ in range(8):
            order = rng.permutation(len(sents))
            if any(sents[int(j)].text != s.text for j, s in zip(order, sents)):
                break
        else:
            order = list(range(1, len(sents))) + [0]
        for s, j in zip(sents, order):
            texts[s.index] = ensure_period(sents[int(j)].text)
    if not texts:
        return not_applicable("fewer than two different sentences in every section")
    text, _ = doc.render(texts)
    return Variant(text, detail="sentences reordered")


@lru_cache(maxsize=1)
def _anatomy():
    data = load("anatomy.yaml")
    groups = data["groups"]
    alt = "|".join(f"(?P<g{i}>{'|'.join(g['keywords'])})" for i, g in enumerate(groups))
    return re.compile(rf"(?i)(?<![\w/])(?:{alt})(?![\w/])"), [g["header"] for g in groups], data["fallback"]


def _group(sentence: str) -> str:
    pattern, headers, fallback = _anatomy()
    if device_lexicon().name.search(sentence):
        return "DEVICES" if "DEVICES" in headers else fallback
    m = pattern.search(sentence)
    return headers[int(m.lastgroup[1:])] if m else fallback


def anatomical_partition(doc: Doc, rng, request) -> Variant:
    sections = doc.sections()
    name = next((n for n in ("findings", "impression", "other") if n in sections), sections[0])
    sents = doc.in_section(name)
    _, headers, fallback = _anatomy()
    grouped: dict[str, list[str]] = {h: [] for h in headers + [fallback]}
    for s in sents:
        grouped[_group(s.text)].append(ensure_period(s.text))
    body = "\n".join(f"{h}: {' '.join(v)}" for h, v in grouped.items() if v)
    first = doc.pieces.index(sents[0])
    last = doc.pieces.index(sents[-1])
    while first > 0 and isinstance(doc.pieces[first - 1], str) and \
            re.fullmatch(r"\s*(?:\d{1,2}\.|[-*])?\s*", doc.pieces[first - 1]) and "\n" not in doc.pieces[first - 1]:
        first -= 1
    before = "".join(p if isinstance(p, str) else p.text for p in doc.pieces[:first])
    after = "".join(p if isinstance(p, str) else p.text for p in doc.pieces[last + 1:])
    sep = "" if not before or before.endswith("\n") else "\n"
    return Variant(f"{before}{sep}{body}{after}", detail=f"{name}: {len([v for v in grouped.values() if v])} groups")


def style_transfer(doc: Doc, rng, request) -> Variant:
    terse_rules, verbose_rules, terse_phrases = _style()
    to_terse, to_verbose = {}, {}
    for s in doc.sentences:
        t = next((o[0] for r in terse_rules if (o := r.apply(s.text))), s.text)
        for pattern, members in terse_phrases:
            t = pattern.sub(lambda m, mm=members: match_case(m.group(), mm[-1]), t)
        t = contract(t)
        if t != s.text:
            to_terse[s.index] = upper_first(t)
        v = expand_abbreviations(s.text)
        v = next((o[0] for r in verbose_rules if (o := r.apply(v))), v)
        if v != s.text:
            to_verbose[s.index] = v
    choices = [c for c, d in (("terse", to_terse), ("verbose", to_verbose)) if d]
    if not choices:
        return not_applicable("no terse or verbose rewrite applies")
    # The direction the report is furthest from: more rewrites available means further away.
    weights = [len(to_terse if c == "terse" else to_verbose) for c in choices]
    order = sorted(choices, key=lambda c: -weights[choices.index(c)] - rng.random())
    for how in order:
        edits = to_terse if how == "terse" else to_verbose
        texts = {i: t for i, t in edits.items() if _keep(doc.sentences[i].text, t)}
        if texts:
            text, _ = doc.render(texts)
            return Variant(text, detail=f"{'verbose -> terse' if how == 'terse' else 'terse -> verbose'} "
                                        f"({len(texts)} sentence(s))")
    return not_applicable("every style rewrite would change the labels")


EQUIVALENT = {"paraphrase": paraphrase, "abbreviation": abbreviation, "split": split, "omission": omission,
              "anatomical_partition": anatomical_partition, "shuffle": shuffle, "style_transfer": style_transfer}
