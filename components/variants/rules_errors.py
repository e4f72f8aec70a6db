"""Error categories of the rules backend: exactly one clinical error per variant.

Each handler takes (Doc, rng, request) and returns a Variant with `changed_span` (where the first
edit is in the variant text) and `detail` ("left -> right"). An edit restated consistently in
findings and impression ("Small left effusion" twice) is made in both places, so the variant
carries one wrong fact, not a contradiction; `detail` then says "(2 places)". Every candidate edit
is re-labelled and kept only when the report-level reading shows exactly the intended change.
"""

from __future__ import annotations

import re
from functools import lru_cache

from components.variants.anatomy import site_phrase, sites
from components.variants.base import Variant
from components.variants.devices import device_mentions, find_devices, lexicon as device_lexicon, position_status
from components.variants.rules import (FINDINGS, Doc, Reading, findings_of, load, match_case, not_applicable,
                                       pick, sentence_labels, upper_first)

_MAX_TRIES = 6  # candidate edits re-labelled per variant before giving up (keeps the backend fast)


def _words(keys, case_sensitive=()) -> re.Pattern:
    alts = []
    for k in sorted(keys, key=len, reverse=True):
        body = re.escape(k).replace(r"\ ", r"\s+")
        alts.append(f"(?-i:{body})" if k in case_sensitive else body)
    return re.compile(rf"(?i)(?<![\w/-])(?:{'|'.join(alts)})(?![\w/-])")


@lru_cache(maxsize=1)
def _data():
    data = load("errors.yaml")
    sev = data["severity"]
    lat = data["laterality"]
    sides = [k for k in lat if len(k) == 1 or k.isupper()]
    return {
        "sev": sev, "sev_words": {"size": _words(sev["size"]), "grade": _words(sev["grade"])},
        "lat": lat, "lat_words": _words(lat, case_sensitive=sides),
        "opposites": [(re.compile(o["match"], re.I), o["to"]) for o in data["opposites"]],
        "false": data["false_findings"], "negated": data["negated"], "affirmed": data["affirmed"],
    }


def _changed(a: Reading, b: Reading) -> list[str]:
    return [o for o in FINDINGS if a.labels.get(o) != b.labels.get(o)]


def _diff(a: dict, b: dict) -> list[str]:
    return [o for o in set(a) | set(b) if a.get(o) != b.get(o)]


def _finish(doc: Doc, texts: dict, first: int, offset: int, length: int, detail: str, n: int = 1) -> Variant:
    text, spans = doc.render(texts)
    start = spans[first][0] + offset
    return Variant(text, detail=detail + (f" ({n} places)" if n > 1 else ""), changed_span=(start, start + length))


def _insert(doc: Doc, rng, sentence: str, detail: str) -> Variant:
    sections = doc.sections()
    name = "findings" if "findings" in sections else sections[0]
    slots = [s.index for s in doc.in_section(name) if findings_of(sentence_labels(s.text))] or \
        [s.index for s in doc.in_section(name)]
    at = pick(rng, slots)
    text, spans = doc.render(after={at: sentence})
    return Variant(text, detail=detail, changed_span=spans[("+", at)])


def _word_edit(doc: Doc, rng, obs_list, attr: str, words: re.Pattern, options_of, check) -> Variant | None:
    """Change one attribute word (severity, side) of one observation everywhere it is stated alike."""
    before = doc.reading()
    tries = 0
    for obs in obs_list:
        value = getattr(before, attr).get(obs)
        sents = [s for s in doc.sentences if getattr(sentence_labels(s.text), attr).get(obs) == value]
        if not sents:
            continue
        first = sents[0]
        matches = list(words.finditer(first.text))
        rng.shuffle(matches)
        for m in matches:
            for new in options_of(m.group(), obs, rng):
                tries += 1
                if tries > _MAX_TRIES:
                    return None
                new = match_case(m.group(), new)
                texts = {}
                for s in sents:
                    for h in words.finditer(s.text) if s is not first else [m]:
                        rep = new if s is first else _restate(h.group(), m.group(), new, obs, options_of, rng)
                        if rep is None:
                            continue
                        cand = s.text[:h.start()] + rep + s.text[h.end():]
                        a, b = sentence_labels(s.text), sentence_labels(cand)
                        if findings_of(a) == findings_of(b) and _diff(getattr(a, attr), getattr(b, attr)) == [obs]:
                            texts[s.index] = cand
                            break
                if first.index not in texts:
                    continue
                after = doc.reading(texts)
                if check(before, after, obs):
                    return _finish(doc, texts, first.index, m.start(), len(new), f"{m.group()} -> {new}", len(texts))
    return None


def _side(word: str) -> str:
    w = word.lower()
    return "left" if w.startswith(("left", "l", "lingul")) and not w.startswith("ll ") else \
        "right" if w.startswith(("right", "r")) else "bilateral"


def _restate(word: str, first_old: str, first_new: str, obs: str, options_of, rng) -> str | None:
    """How another sentence stating the same fact changes with the first edit: the same word the
    same way; for sides, any word of the same side to the new side ("right basilar" with "RLL")."""
    if word.lower() == first_old.lower():
        return match_case(word, first_new)
    if options_of.__name__ != "lat_options" or _side(word) != _side(first_old):
        return None
    target = _side(first_new)
    return next((match_case(word, o) for o in options_of(word, obs, rng) if _side(o) == target), None)


def severity(doc: Doc, rng, request) -> Variant:
    d = _data()
    before = doc.reading()
    obs_list = [o for o in before.severity if before.labels.get(o) in (1.0, -1.0)]
    if not obs_list:
        return not_applicable("no finding with a severity word")
    rng.shuffle(obs_list)

    def scale(obs):
        return "size" if obs in d["sev"]["size_observations"] else "grade"

    def options(word, obs, rng):
        opts = list(d["sev"][scale(obs)].get(word.lower(), ()))
        rng.shuffle(opts)
        return opts

    for obs in obs_list:
        v = _word_edit(doc, rng, [obs], "severity", d["sev_words"][scale(obs)], options,
                       lambda a, b, o: not _changed(a, b) and _diff(a.severity, b.severity) == [o])
        if v:
            return v
    return not_applicable("no severity word could be changed alone")


def location(doc: Doc, rng, request) -> Variant:
    d = _data()
    before = doc.reading()
    obs_list = [o for o in before.laterality if before.labels.get(o) in (1.0, -1.0) and o != "Support Devices"]
    if not obs_list:
        return not_applicable("no finding with a side")
    rng.shuffle(obs_list)

    def lat_options(word, obs, rng):
        key = word if word in d["lat"] else next((k for k in d["lat"] if k.lower() == word.lower()), None)
        opts = list(d["lat"].get(key, ()))
        rng.shuffle(opts)
        return opts

    v = _word_edit(doc, rng, obs_list, "laterality", d["lat_words"], lat_options,
                   lambda a, b, o: not _changed(a, b) and _diff(a.laterality, b.laterality) == [o])
    return v or not_applicable("no side word could be swapped alone")


def _fill(template: str, rng) -> str:
    side = pick(rng, ("left", "right"))
    size, grade = pick(rng, ("small", "moderate", "large")), pick(rng, ("mild", "moderate", "severe"))
    rib = pick(rng, ("4th", "5th", "6th", "7th", "8th"))
    vals = {"side": side, "size": size, "grade": grade, "rib": rib, "cm": f"{float(rng.integers(8, 45)) / 10:.1f}"}
    vals.update({k.capitalize(): upper_first(v) for k, v in list(vals.items())})
    return upper_first(re.sub(r"\s{2,}", " ", template.format(**vals)))


def false_prediction(doc: Doc, rng, request) -> Variant:
    d = _data()
    before = doc.reading()
    given = request.labels or {}
    blank = [o for o in d["false"] if o not in before.labels and given.get(o) in (None, 0.0)
             and given.get(o) == given.get(o)]  # NaN != NaN: a NaN label is blank too
    blank += [o for o in d["false"] if o not in before.labels and given.get(o) != given.get(o)]
    blank = list(dict.fromkeys(blank))
    if not blank:
        return not_applicable("no blank observation left to add")
    rng.shuffle(blank)
    for obs in blank[:_MAX_TRIES]:
        sentence = _fill(pick(rng, d["false"][obs]), rng)
        after = doc.reading(extra=(sentence,))
        if _changed(before, after) == [obs] and after.labels[obs] == 1.0:
            return _insert(doc, rng, sentence, f"added {obs}: {sentence}")
    return not_applicable("no added finding read as exactly one new observation")


_AN = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _template(template: str, sentence: str, obs: str) -> str:
    """A negated / affirmed template filled with the side and sites of `sentence`'s finding."""
    side = sentence_labels(sentence).laterality.get(obs, "")
    text = template.format(side="" if side == "bilateral" else side, site=site_phrase(sentence))
    return _AN.sub(r"\1n ", upper_first(re.sub(r"\s{2,}", " ", text)))


def _present(sentence: str, obs: str) -> bool:
    return sentence_labels(sentence).labels.get(obs) in (1.0, -1.0)


def _single(sentence: str) -> tuple[str, float] | None:
    """(observation, value) when the labeler reads exactly one observation in the sentence."""
    f = findings_of(sentence_labels(sentence))
    return next(iter(f.items())) if len(f) == 1 else None


def _flip(doc: Doc, obs: str, template: str):
    """Replace every sentence stating `obs` as present (all single-observation) by its negated form;
    sentences that already negate it stay."""
    texts = {}
    for s in doc.sentences:
        f = findings_of(sentence_labels(s.text))
        if f.get(obs) not in (1.0, -1.0):
            continue
        if len(f) != 1:
            return None
        texts[s.index] = _template(template, s.text, obs)
    return texts or None


def false_negation(doc: Doc, rng, request) -> Variant:
    """Negate a present (positive or uncertain) finding; a negative is never "negated" again."""
    d = _data()
    before = doc.reading()
    cands = [o for o, v in before.labels.items() if o != "Support Devices" and v in (1.0, -1.0) and o in d["negated"]]
    if not cands:
        return not_applicable("no present finding to negate")
    rng.shuffle(cands)
    for obs in cands[:_MAX_TRIES]:
        texts = _flip(doc, obs, d["negated"][obs])
        if not texts:
            continue
        after = doc.reading(texts)
        if _changed(before, after) == [obs] and after.labels.get(obs) == 0.0:
            first = min(texts)
            return _finish(doc, texts, first, 0, len(texts[first]), f"negated {obs}: {doc.sentences[first].text} -> "
                           f"{texts[first]}", len(texts))
    return not_applicable("every present finding is stated together with another one")


def opposite_sentence(doc: Doc, rng, request) -> Variant:
    d = _data()
    before = doc.reading()
    cands = []
    for s in doc.sentences:
        for pattern, to in d["opposites"]:
            if pattern.fullmatch(s.text):
                cands += [(s, t) for t in to]
        one = _single(s.text)
        if one and one[0] in d["negated"]:
            obs, v = one
            cands.append((s, _template(d["negated"][obs] if v != 0.0 else d["affirmed"][obs], s.text, obs)))
    if not cands:
        return not_applicable("no sentence with a known opposite")
    order = rng.permutation(len(cands))
    for j in order[:_MAX_TRIES]:
        s, new = cands[int(j)]
        if sites(new) != sites(s.text):  # an opposite is about the same anatomy
            continue
        texts = {s.index: new}
        after = doc.reading(texts)
        one = _single(s.text)
        if len(_changed(before, after)) != 1 and one:  # restated elsewhere: those sentences go too
            texts.update({t.index: new for t in doc.sentences if _single(t.text) == one})
            after = doc.reading(texts)
        if len(_changed(before, after)) == 1:
            first = min(texts)
            return _finish(doc, texts, first, 0, len(new), f"{s.text} -> {new}", len(texts))
    return not_applicable("no opposite changes exactly one observation")


_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?=\s?(?:cm|mm)\b)")


def _new_number(old: str, rng) -> str:
    if "." in old:
        value = float(old)
        opts = [f"{value * f:.1f}" for f in (0.5, 1.5, 2.0, 2.5)]
        opts = [o for o in opts if o != old and float(o) > 0]
    else:
        value = int(old)
        opts = [str(value + k) for k in (-3, -2, 2, 3, 4, 5) if value + k >= 1]
    return pick(rng, opts)


def _states_present(sentence: str) -> bool:
    return any(v in (1.0, -1.0) for v in findings_of(sentence_labels(sentence)).values())


def measurement(doc: Doc, rng, request) -> Variant:
    """Change a number of a present finding or device ("2.1 cm nodule", "ETT 4 cm above the
    carina"); a number in a negative statement ("no nodule over 5 mm") changes nothing clinical."""
    cands = [(s, m) for s in doc.sentences if _states_present(s.text) for m in _NUMBER.finditer(s.text)]
    if not cands:
        return not_applicable("no measurement of a present finding in the findings or impression")
    order = rng.permutation(len(cands))
    for j in order[:_MAX_TRIES]:
        s, m = cands[int(j)]
        new = _new_number(m.group(), rng)
        cand = s.text[:m.start()] + new + s.text[m.end():]
        a, b = sentence_labels(s.text), sentence_labels(cand)
        if findings_of(a) == findings_of(b):
            return _finish(doc, {s.index: cand}, s.index, m.start(), len(new), f"{m.group()} -> {new}")
    return not_applicable("no measurement could change alone")


def add_device(doc: Doc, rng, request) -> Variant:
    lex = device_lexicon()
    present = {m.device for m in find_devices(request.text)}
    cands = [k for k, v in lex.devices.items() if k not in present and v.get("add")]
    if not cands:
        return not_applicable("every device is already there")
    rng.shuffle(cands)
    before = doc.reading()
    n = len(device_mentions(request.text))
    for key in cands[:_MAX_TRIES]:
        sentence = lex.devices[key]["add"]
        after = doc.reading(extra=(sentence,))
        if [o for o in _changed(before, after) if o != "Support Devices"]:
            continue
        v = _insert(doc, rng, sentence, f"added {key}")
        if len(device_mentions(v.text)) == n + 1:
            return v
    return not_applicable("no device sentence could be added cleanly")


def _device_edit(doc: Doc, rng, what: str) -> Variant:
    lex = device_lexicon()
    cands = []
    for s in doc.sentences:
        if not _present(s.text, "Support Devices"):  # "the ETT has been removed": nothing to rename or move
            continue
        for m in find_devices(s.text):
            spec = lex.devices.get(m.device, {})
            if what == "name":
                for new in spec.get("rename_to", ()):
                    written = s.text[m.type_start:m.end]
                    style = "abbr" if written.isupper() else "full"
                    cands.append((s, m, m.type_start, m.end, lex.devices[new]["written"][style]))
            elif m.pos_start >= 0 and spec.get("movable", True) and position_status(m.device, m.position) == "normal":
                # a device in a correct position moved to an incorrect one; two normal places are no error
                cands += [(s, m, m.pos_start, m.pos_end, new) for new in spec.get("malpositions", ())]
    if not cands:
        return not_applicable(f"no present device {'to rename' if what == 'name' else 'in a correct position to move'}")
    before = doc.reading()
    for j in rng.permutation(len(cands))[:_MAX_TRIES]:
        s, m, a, b, new = cands[int(j)]
        old = s.text[a:b]
        base = new
        new = (upper_first(base) if old[:1].isupper() else base) if what == "name" else base
        texts, offsets = {}, {}
        for t in doc.sentences:  # the same device stated alike elsewhere changes with it
            for o in find_devices(t.text):
                if (o.name, o.position) == (m.name, m.position):
                    lo, hi = (o.type_start, o.end) if what == "name" else (o.pos_start, o.pos_end)
                    if t.text[lo:hi].lower() == old.lower():
                        rep = upper_first(base) if what == "name" and t.text[lo:lo + 1].isupper() else base
                        texts[t.index] = t.text[:lo] + rep + t.text[hi:]
                        offsets[t.index] = lo
                    break
        if s.index not in texts:
            continue
        after = doc.reading(texts)
        if _changed(before, after):
            continue
        detail = f"{old} -> {new}"
        return _finish(doc, texts, min(texts), offsets[min(texts)], len(new), detail, len(texts))
    return not_applicable("no device edit kept the labels")


def device_name(doc: Doc, rng, request) -> Variant:
    return _device_edit(doc, rng, "name")


def device_position(doc: Doc, rng, request) -> Variant:
    return _device_edit(doc, rng, "position")


ERRORS = {"severity": severity, "location": location, "false_prediction": false_prediction,
          "false_negation": false_negation, "measurement": measurement, "opposite_sentence": opposite_sentence,
          "add_device": add_device, "device_name": device_name, "device_position": device_position}
