"""Render a free-text chest X-ray report from a StudyTruth, deterministically from an rng.

The text must stay faithful: a CheXpert/NegBio-style labeler later recovers `truth.labels()` from it.
So every finding and every stated negative is written with its own observation's vocabulary only,
hedged findings are hedged at every mention, and noise (de-id tokens, typos, wrapping) never touches
clinical keywords, laterality, negation or hedge cues. All randomness comes from the rng passed in.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np

from components.params import SynthNoise
from components.synth.phrasing import real_phrasings
from components.synth.styles import STYLES
from components.synth.truth import Finding, StudyTruth


# Normal-summary phrases: only studies without pathology (truth.is_normal) carry them.
NORMAL_IMPRESSIONS = ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                      "No acute intrathoracic process.", "No acute intrathoracic abnormality.")

# Sentence order in a findings section: devices, lungs, pleura, heart/mediastinum, bones.
_GROUP = {"Support Devices": 0, "Lung Opacity": 1, "Lung Lesion": 1, "Edema": 1, "Consolidation": 1,
          "Pneumonia": 1, "Atelectasis": 1, "Pneumothorax": 2, "Pleural Effusion": 2, "Pleural Other": 2,
          "Cardiomegaly": 3, "Enlarged Cardiomediastinum": 3, "Fracture": 4}

# Negatives that read naturally as one "No a, b or c." list, with the noun each contributes.
_NEG_NOUN = {"Lung Opacity": "focal opacity", "Consolidation": "focal consolidation",
             "Edema": "pulmonary edema", "Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax"}
_NEG_NOUN_ABBR = {"Lung Opacity": "focal opacity", "Consolidation": "consolidation", "Edema": "edema",
                  "Pleural Effusion": "effusion", "Pneumothorax": "PTX"}
_NEG_NOUN_TERSE = dict(_NEG_NOUN_ABBR, Pneumothorax="pneumothorax")
_NEG_SENTENCES = {
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
    "Pleural Effusion": ("No pleural effusion.", "There is no pleural effusion.", "No pleural effusion is seen."),
    "Consolidation": ("No focal consolidation.", "There is no focal consolidation."),
    "Edema": ("No pulmonary edema.", "There is no pulmonary edema."),
    "Pneumonia": ("No evidence of pneumonia.", "No pneumonia."),
    "Cardiomegaly": ("Heart size is normal.", "The heart is normal in size.", "Normal heart size."),
    "Fracture": ("No acute rib fracture.", "No rib fracture is seen."),
    "Lung Opacity": ("No focal opacity.", "There is no focal opacity."),
    "Enlarged Cardiomediastinum": ("Mediastinal contours are normal.", "Normal mediastinal contours.",
                                   "The cardiomediastinal silhouette is normal."),
}
_NEG_ABBR = {"Pneumonia": "No pneumonia.", "Cardiomegaly": "No cardiomegaly.", "Fracture": "No fracture.",
             "Enlarged Cardiomediastinum": "Normal mediastinal contours."}

# Typos land only on these filler words (never "of"/"for"/"no"/"not": they carry hedge/negation cues).
_TYPOS = {"the": ("teh", "hte", "th"), "is": ("si", "iss"), "are": ("aer", "ar"), "seen": ("sen", "seeen"),
          "there": ("tehre", "ther"), "noted": ("ntoed", "notedd"), "with": ("wiht", "wtih"),
          "and": ("adn", "nad"), "has": ("hsa", "hass"), "been": ("ben", "bene"), "present": ("presnet", "prsent")}
_TYPO_RE = re.compile(r"\b(" + "|".join(_TYPOS) + r")\b", re.IGNORECASE)

_REASONS = ("shortness of breath", "fever", "cough", "chest pain", "s/p fall", "hypoxia", "dyspnea",
            "weakness", "tachycardia")
_REASONS_ABBR = ("SOB", "fever", "cough", "chest pain", "s/p fall", "hypoxia")


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _join(*parts) -> str:
    return " ".join(p for p in parts if p)


def _article(np_: str, number: str) -> str:
    return "" if number != "sg" else "an " if np_[:1].lower() in "aeiou" else "a "


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _side(lat: str | None, abbr: bool, rng: np.random.Generator) -> str:
    if not lat or not abbr:
        return lat or ""
    return {"left": "L", "right": "R"}.get(lat) or pick(rng, ("b/l", "B/L"))


def _location(f: Finding, abbr: bool, rng: np.random.Generator) -> str:
    """Lobe (right upper/middle/lower lobe; left upper lobe/lingula/left lower lobe) or bilateral zone."""
    if f.laterality == "bilateral":
        zone = {"upper": "upper lung", "middle": "mid lung", "lower": "lower lung"}.get(f.zone or "", "")
        return _join(_side("bilateral", abbr, rng), zone)
    if f.laterality not in ("left", "right"):
        return _join(f.zone and f"{f.zone} lung")
    if f.zone not in ("upper", "middle", "lower"):
        return _join(_side(f.laterality, abbr, rng), "lung")
    if f.laterality == "left" and f.zone == "middle":
        return "lingular"
    if abbr:
        return f"{f.laterality[0].upper()}{f.zone[0].upper()}L"
    return f"{f.laterality} {f.zone} lobe"


def _noun_phrase(f: Finding, abbr: bool, rng: np.random.Generator) -> tuple[str, str]:
    """Lower-case noun phrase for a finding and its number ('sg', 'pl' or 'mass')."""
    obs, sev, side = f.observation, f.severity, _side(f.laterality, abbr, rng)
    if obs == "Pleural Effusion":
        plural = f.laterality == "bilateral"
        noun = "effusions" if plural else "effusion"
        return _join(sev, side, None if abbr and rng.random() < 0.5 else "pleural", noun), "pl" if plural else "sg"
    if obs == "Pneumothorax":
        return _join(sev, side, "PTX" if abbr else "pneumothorax"), "sg"
    if obs in ("Consolidation", "Pneumonia"):
        return _join(_location(f, abbr, rng), obs.lower()), "mass"
    if obs == "Lung Opacity":
        plural = f.laterality == "bilateral"
        return _join(_location(f, abbr, rng), "opacities" if plural else "opacity"), "pl" if plural else "sg"
    if obs == "Atelectasis":
        if f.laterality == "bilateral" and f.zone in (None, "lower"):
            where = "bibasilar"
        elif f.zone == "lower" and f.laterality in ("left", "right") and rng.random() < 0.3:
            where = f"{side} basilar"
        else:
            where = _location(f, abbr, rng)
        return _join(sev, where, "atelectasis"), "mass"
    if obs == "Edema":
        return _join(sev, None if abbr else "pulmonary", "edema"), "mass"
    if obs == "Cardiomegaly":
        return _join(sev, "cardiomegaly"), "mass"
    if obs == "Enlarged Cardiomediastinum":
        return _join(sev, "mediastinal widening"), "mass"
    if obs == "Lung Lesion":
        kind = "mass" if f.size_cm is not None and f.size_cm >= 3 else "nodule"
        size = f"{f.size_cm:.1f} cm" if f.size_cm is not None else ""
        return _join(size, _location(f, abbr, rng), kind), "sg"
    if obs == "Pleural Other":
        where = {"upper": "apical", "lower": "basilar"}.get(f.zone or "")
        return _join(side, where, "pleural thickening"), "mass"
    if obs == "Fracture":
        rib = f.rib and _ordinal(f.rib)
        if abbr:
            return _join("acute", side, rib, "rib fracture"), "sg"
        return "acute fracture of the " + _join(side, rib, "rib"), "sg"
    raise ValueError(f"cannot render observation {obs!r}")


_CHANGE_ADJ = {"new": "new", "unchanged": "unchanged", "increased": "increasing", "decreased": "decreasing"}


def _finding_sentence(f: Finding, rng: np.random.Generator, mode: str) -> str:
    """One sentence for a finding; mode is 'full' (varied), 'short' (impression) or 'abbr'."""
    abbr = mode == "abbr"
    if f.observation == "Support Devices":
        return _device_sentence(f, rng, abbr)
    np_, number = _noun_phrase(f, abbr, rng)
    if f.observation == "Fracture" and f.change in ("unchanged", "increased", "decreased"):
        old = np_.replace("acute ", "")
        return pick(rng, {"unchanged": (f"Unchanged {old}.", f"Stable {old}."),
                           "increased": (f"Interval increase in displacement of the {old}.",),
                           "decreased": (f"Improving, healing {old}.",)}[f.change])
    if f.certainty == "uncertain":
        np2 = _join(_CHANGE_ADJ.get(f.change or ""), np_)
        a = _article(np2, number)
        if abbr:
            return pick(rng, (f"Possible {np2}.", f"Likely {np2}.", f"Questionable {np2}.", f"Cannot exclude {np2}."))
        return pick(rng, (f"Possible {np2}.", f"Cannot exclude {a}{np2}.", f"Likely {np2}.",
                           f"Findings may represent {a}{np2}.", f"Findings suggestive of {a}{np2}.",
                           f"Questionable {np2}.", f"Findings concerning for {a}{np2}."))
    be = "are" if number == "pl" else "is"
    if f.change == "new":
        options = [f"New {np_}."] + ([] if mode != "full" else [f"There {be} {_article('new', number)}new {np_}."])
    elif f.change == "unchanged":
        options = [f"Unchanged {np_}.", f"Stable {np_}."] + ([f"{_cap(np_)} {be} unchanged."] if mode == "full" else [])
    elif f.change == "increased":
        options = [f"Increased {np_}."] if abbr else [f"Interval increase in {np_}.", f"Increased {np_}."]
    elif f.change == "decreased":
        options = [f"Decreased {np_}."] if abbr else [f"Decreased {np_}.", f"Interval decrease in {np_}.",
                                                       f"Improving {np_}."]
    elif mode == "full":
        options = [f"There {be} {_article(np_, number)}{np_}.", f"{_cap(np_)} {be} present.",
                   f"{_cap(np_)} {be} seen.", f"{_cap(np_)}."]
        if f.observation == "Cardiomegaly" and f.severity in ("mild", "moderate", "severe"):
            options.append(f"The heart is {f.severity}ly enlarged.")
        if f.observation == "Enlarged Cardiomediastinum" and f.severity in ("mild", "moderate"):
            options.append(f"The mediastinum is {f.severity}ly widened.")
    else:
        options = [f"{_cap(np_)}."]
        if abbr and f.observation == "Pleural Effusion" and f.laterality in ("left", "right") and rng.random() < 0.3:
            options = [f"{_cap(np_)} w/ blunting of {f.laterality[0].upper()} CP angle."]
    return _cap(pick(rng, options))


_DEVICE_ABBR = {"endotracheal tube": "ETT", "nasogastric tube": "NGT", "right PICC": "R PICC",
                "left PICC": "L PICC", "right internal jugular central line": "R IJ CVL",
                "left internal jugular central line": "L IJ CVL", "right chest tube": "R chest tube",
                "left chest tube": "L chest tube"}
_MOVABLE = ("tube", "PICC", "line")  # devices that can be advanced or withdrawn


def _device_sentence(f: Finding, rng: np.random.Generator, abbr: bool) -> str:
    """Device name and tip position: 'Endotracheal tube terminates 4 cm above the carina.'"""
    device, pos = f.device or "support device", f.position or ""
    if device == "sternotomy wires":
        if abbr:
            return "New median sternotomy wires." if f.change == "new" else "S/p median sternotomy, wires intact."
        lead = {"new": "New median", "unchanged": "Unchanged median"}.get(f.change or "", "Median")
        return f"{lead} sternotomy wires are {pos or 'intact'}."
    name = f"{f.laterality}-sided pacemaker" if device == "pacemaker" and f.laterality else device
    if abbr:
        name = _DEVICE_ABBR.get(device, name.replace("left-sided", "L-sided").replace("right-sided", "R-sided"))
        pos = pos.replace("the ", "").replace("right atrium and right ventricle", "RA and RV")
    number = pos[:1].isdigit()  # "4 cm above the carina" reads "terminates ..."; "tip in ..." reads "with ..."
    if not pos:
        where = ""
    elif abbr:
        where = pos if number or pos.startswith("tip") else f"w/ {pos}"
    else:
        where = f"{'terminates' if number else 'with'} {pos}"
    if f.change in ("increased", "decreased") and any(k in device for k in _MOVABLE):
        verb = "advanced" if f.change == "increased" else "withdrawn"
        if abbr:
            return f"{_cap(name)} {verb}, now {where}".rstrip() + "."
        return f"{_cap(name)} has been {verb}, now {_join('terminating' if number else 'with', pos)}".rstrip() + "."
    prefix = {"new": "New", "unchanged": pick(rng, ("Unchanged", "Stable"))}.get(f.change or "")
    if f.change in ("increased", "decreased"):
        prefix = "Stable"  # a pacemaker does not advance
    if prefix:
        return f"{prefix} {name} {where}".rstrip() + "."
    if abbr or not pos:
        return f"{_cap(name)} {where}".rstrip() + "."
    if number:
        return pick(rng, (f"{_cap(name)} terminates {pos}.", f"{_cap(name)} is in place, terminating {pos}."))
    return pick(rng, (f"{_cap(name)} with {pos}.", f"{_cap(name)} is in place with {pos}."))


def _or_list(words: list[str], rng: np.random.Generator) -> str:
    if len(words) == 1:
        return words[0]
    comma = "," if len(words) > 2 and rng.random() < 0.5 else ""
    return ", ".join(words[:-1]) + f"{comma} or {words[-1]}"


def _negative_sentences(truth: StudyTruth, rng: np.random.Generator, mode: str) -> list[tuple[int, str]]:
    """Every truth.negatives observation stated absent with its own word, as (group, sentence)."""
    negs = list(truth.negatives)
    out: list[tuple[int, str]] = []
    nouns = {"abbr": _NEG_NOUN_ABBR, "terse": _NEG_NOUN_TERSE}.get(mode, _NEG_NOUN)
    listed = [o for o in negs if o in nouns]
    if len(listed) >= 2 and (mode in ("abbr", "terse") or rng.random() < 0.5):
        lead = "No" if mode != "full" else pick(rng, ("No", "There is no"))
        out.append((2, f"{lead} {_or_list([nouns[o] for o in listed], rng)}."))
        negs = [o for o in negs if o not in listed]
    heart = {"Cardiomegaly", "Enlarged Cardiomediastinum"} <= set(negs)
    if heart and (mode == "terse" or rng.random() < 0.5):
        out.append((3, pick(rng, ("Heart size and mediastinal contours are normal.",
                                   "Normal heart size and mediastinal contours."))))
        negs = [o for o in negs if o not in ("Cardiomegaly", "Enlarged Cardiomediastinum")]
    cardiomegaly = any(f.observation == "Cardiomegaly" for f in truth.findings)
    for obs in negs:
        if mode == "abbr":
            sentence = _NEG_ABBR.get(obs) or f"No {_NEG_NOUN_ABBR[obs]}."
        elif mode == "terse" and obs == "Cardiomegaly":
            sentence = "Heart size normal."
        else:
            options = _NEG_SENTENCES[obs]
            if obs == "Enlarged Cardiomediastinum" and cardiomegaly:
                options = options[:2]  # "cardiomediastinal silhouette is normal" would contradict cardiomegaly
            sentence = pick(rng, options)
        out.append((_GROUP[obs], sentence))
    return out


def _body(truth: StudyTruth, rng: np.random.Generator, mode: str) -> list[str]:
    """Findings-section sentences: findings and negatives, in anatomical order."""
    items = [(_GROUP.get(f.observation, 1), _finding_sentence(f, rng, mode)) for f in truth.findings]
    items += _negative_sentences(truth, rng, mode)
    if truth.is_normal and mode == "full" and (not items or rng.random() < 0.6):
        items.append((1, pick(rng, ("The lungs are clear.", "Lungs are clear."))))
    return [s for _, s in sorted(items, key=lambda item: item[0])]


def _impression(truth: StudyTruth, rng: np.random.Generator) -> list[str]:
    """Impression items: a normal summary or the pathologies (hedged as in the findings), then devices."""
    if truth.is_normal:
        items = [pick(rng, NORMAL_IMPRESSIONS)]
        if truth.comparison and rng.random() < 0.5:
            items[0] = items[0][:-1] + "; no significant interval change."
    else:
        items = [_finding_sentence(f, rng, "short") for f in truth.findings if f.observation != "Support Devices"]
    if rng.random() < 0.4:
        items += [_finding_sentence(f, rng, "short") for f in truth.findings if f.observation == "Support Devices"]
    return items


def _age(rng: np.random.Generator, deid: str | None, abbr: bool) -> str:
    sex = int(rng.integers(2))
    age = {"mimic": "___", "openi": "XXXX"}.get(deid or "", str(int(rng.integers(21, 90))))
    if abbr:
        return f"{age} y/o {'MF'[sex]}" if deid or rng.random() < 0.5 else f"{age}{'MF'[sex]}"
    noun = pick(rng, (("man", "woman"), ("male", "female")))[sex]
    return f"{age}{pick(rng, (' year old', '-year-old'))} {noun}"


def _history(truth: StudyTruth, rng: np.random.Generator, deid: str | None, abbr: bool) -> str:
    """Age, sex and a reason for the exam that names no observation ("___ year old woman with cough")."""
    devices = " ".join(f.device or "" for f in truth.findings if f.observation == "Support Devices")
    reasons = list(_REASONS_ABBR if abbr else _REASONS)
    if "PICC" in devices or "central line" in devices:
        reasons.append("s/p line placement")  # a device mention is only fine when the truth has a device
    if "tube" in devices:
        reasons.append("s/p tube placement")
    reason = pick(rng, reasons)
    joiner = "" if reason.startswith("s/p") else "w/" if abbr else "with"
    return _join(_age(rng, deid, abbr), joiner, reason)


def _comparison(truth: StudyTruth, rng: np.random.Generator, deid: str | None) -> str:
    if not truth.comparison:
        return pick(rng, ("None.", "None available."))
    return pick(rng, {"mimic": ("___.", "Chest radiograph from ___.", "Prior study of ___."),
                       "openi": ("XXXX.", "XXXX PA and lateral chest radiographs.")}.get(
        deid or "", ("Prior chest radiograph.", "Chest radiograph from the prior day.",
                     "Radiograph of one week earlier.")))


def _views(truth: StudyTruth) -> tuple[str, str]:
    """(EXAMINATION name, TECHNIQUE sentence) matching truth.views."""
    frontal = "AP" if "AP" in truth.views else "PA"
    if "LATERAL" in truth.views:
        return f"CHEST ({frontal} AND LAT)", f"{frontal} and lateral views of the chest."
    if frontal == "AP":
        return "CHEST (PORTABLE AP)", "Portable AP view of the chest."
    return "CHEST (PA)", "Single PA view of the chest."


def _render_full(truth: StudyTruth, rng: np.random.Generator, deid: str | None) -> str:
    title = rng.random() < 0.2 and deid == "openi"  # Open-I reports use Title-case headers
    def section(name: str, content: str) -> str:
        name = name.title() if title else name
        return f"{name}:{pick(rng, ('  ', chr(10)))}{content}"
    exam, technique = _views(truth)
    header = pick(rng, ("FINAL REPORT", " " * 33 + "FINAL REPORT", ""))  # MIMIC flush, centred, or none
    exam_line = f"EXAMINATION:  {exam}" if rng.random() < 0.6 else ""
    parts = [header, exam_line,
             section(pick(rng, ("INDICATION", "HISTORY")), f"{_history(truth, rng, deid, False)}."),
             section("TECHNIQUE", technique), section("COMPARISON", _comparison(truth, rng, deid)),
             section("FINDINGS", " ".join(_body(truth, rng, "full"))),
             section("IMPRESSION", " ".join(_impression(truth, rng)))]
    return pick(rng, ("\n\n", "\n \n")).join(p for p in parts if p) + "\n"


def _preamble(truth: StudyTruth, rng: np.random.Generator, deid: str | None) -> list[str]:
    """Optional short history/comparison lines for the terse styles (always there when de-identified)."""
    lines = []
    if deid or rng.random() < 0.3:
        lines.append(f"HISTORY:  {_history(truth, rng, deid, False)}.")
    if truth.comparison:
        lines.append(f"COMPARISON:  {_comparison(truth, rng, deid)}")
    return lines


def _render_impression_only(truth, rng, deid) -> str:
    items = [pick(rng, NORMAL_IMPRESSIONS)] if truth.is_normal else []
    items += [_finding_sentence(f, rng, "short") for f in truth.findings]
    items += [s for _, s in _negative_sentences(truth, rng, "short")]
    body = " ".join(items)
    if rng.random() < 0.7:
        body = f"IMPRESSION:{pick(rng, ('  ', chr(10)))}{body}"
    return "\n".join(_preamble(truth, rng, deid) + [body]) + "\n"


def _render_numbered(truth, rng, deid) -> str:
    items = _impression(truth, rng)
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(items, 1))
    return "\n\n".join(_preamble(truth, rng, deid) + [f"FINDINGS:  {' '.join(_body(truth, rng, 'full'))}",
                                                      f"IMPRESSION:\n{numbered}"]) + "\n"


def _render_abbreviated(truth, rng, deid) -> str:
    views = "Portable AP CXR." if truth.views == ["AP"] else "PA/lat CXR." if "LATERAL" in truth.views else "CXR."
    lines = [views] if rng.random() < 0.5 else []
    if deid or rng.random() < 0.5:
        lines.append(f"Hx: {_history(truth, rng, deid, True)}.")
    if truth.comparison:
        lines.append("Comp: " + {"mimic": "___.", "openi": "XXXX."}.get(deid or "", "prior."))
    sentences = _body(truth, rng, "abbr")
    if truth.is_normal:
        sentences.append(pick(rng, NORMAL_IMPRESSIONS))
    lines.append(pick(rng, (" ", "\n")).join(sentences))
    return "\n".join(lines) + "\n"


def _render_terse_normal(truth, rng, deid) -> str:
    normal = pick(rng, NORMAL_IMPRESSIONS)
    negatives = [s for _, s in sorted(_negative_sentences(truth, rng, "terse"), key=lambda i: i[0])]
    views = _views(truth)[1].replace("Single ", "").replace("Portable AP view", "AP view")
    sentences = pick(rng, ([normal] + negatives, [normal, "Lungs are clear."] + negatives,
                            [views] + negatives + ["Lungs clear.", normal]))
    return "\n".join(_preamble(truth, rng, deid) + [" ".join(sentences)]) + "\n"


_RENDERERS = {"full": _render_full, "impression_only": _render_impression_only, "numbered": _render_numbered,
              "abbreviated": _render_abbreviated, "terse_normal": _render_terse_normal}


def _add_typos(text: str, rng: np.random.Generator) -> str:
    """Misspell one to three filler words; clinical, laterality, negation and hedge words are never hit."""
    spots = list(_TYPO_RE.finditer(text))
    if not spots:
        return text
    chosen = sorted(rng.choice(len(spots), size=min(len(spots), 1 + int(rng.integers(3))), replace=False))
    for i in reversed(chosen):
        m = spots[int(i)]
        typo = pick(rng, _TYPOS[m.group().lower()])
        word = m.group()
        typo = typo.upper() if word.isupper() and len(word) > 1 else _cap(typo) if word[0].isupper() else typo
        text = text[:m.start()] + typo + text[m.end():]
    return text


def _hard_wrap(text: str, rng: np.random.Generator) -> str:
    """MIMIC-style hard wrap: an odd width, each line starting with a space, centred headers kept."""
    width = int(rng.integers(40, 76))
    out = []
    for line in text.rstrip("\n").split("\n"):
        if not line.strip() or line.startswith("   "):
            out.append(line if line.strip() else " ")
            continue
        out += [" " + piece for piece in textwrap.wrap(line, width - 1, break_long_words=False,
                                                         break_on_hyphens=False)]
    return "\n".join(out) + "\n"


def render_report(truth: StudyTruth, rng: np.random.Generator, noise: SynthNoise) -> str:
    """The report text for `truth` in its style; same truth and rng state give the same string."""
    if truth.style not in STYLES:
        raise ValueError(f"unknown report style {truth.style!r}; known: {list(STYLES)}")
    style = "full" if truth.style == "terse_normal" and truth.findings else truth.style
    deid = pick(rng, ("mimic", "openi")) if rng.random() < noise.deid_token_rate else None
    text = real_phrasings(_RENDERERS[style](truth, rng, deid), truth, noise.real_phrasing_rate)  # own seed
    # Draw both noise decisions unconditionally so rates do not shift the rng stream of later draws.
    typo, wrap = rng.random() < noise.typo_rate, rng.random() < noise.wrap_rate
    if typo:
        text = _add_typos(text, rng)
    if wrap:
        text = _hard_wrap(text, rng)
    return text
