"""Abbreviation lexicon, detection and expansion, and the style features built on them."""

from __future__ import annotations

import pytest
import yaml

from components.reports.abbreviations import (
    LEXICON_PATH, expand_abbreviations, find_abbreviations, load_lexicon)
from components.reports.features import style_features
from components.reports.normalize import normalize_report
from components.reports.sections import parse_sections

REQUIRED = ("PTX", "CHF", "b/l", "bilat", "RLL", "RML", "RUL", "LLL", "LUL", "ETT", "ET tube", "NGT", "NG tube",
            "OGT", "PICC", "IJ", "RIJ", "LIJ", "CVL", "CVC", "SVC", "IVC", "CP angle", "AP", "PA", "LAT", "CXR",
            "PNA", "ASD", "COPD", "DDx", "s/p", "w/", "w/o", "h/o", "r/o", "c/w", "eval", "SOB", "RA", "RV", "LV",
            "mm", "cm", "NG", "OG", "AICD", "ICD", "IABP", "ECMO", "trach", "RUQ", "LUQ", "R", "L", "L>R", "R>L",
            "GE junction", "nl", "WNL", "?")
AMBIGUOUS = ("RA", "PA", "AP", "ASD", "MS", "LAD", "PE")


def test_lexicon_file_is_complete_and_well_formed():
    raw = yaml.safe_load(LEXICON_PATH.read_text())
    lex = load_lexicon()
    assert set(REQUIRED) <= set(lex.entries)
    for key in AMBIGUOUS:
        entry = lex.entries[key]
        assert entry.ambiguous and entry.expansion is None and len(entry.candidates) >= 2
    assert {"right atrium", "room air", "rheumatoid arthritis"} <= set(lex.entries["RA"].candidates)
    for item in raw:
        assert set(item) <= {"abbr", "forms", "expansion", "expansions", "ambiguous", "resolve", "followed_by",
                             "keep"}, item
        assert bool(item.get("ambiguous")) == ("expansions" in item), item


def test_custom_lexicon_file(tmp_path):
    path = tmp_path / "lex.yaml"
    path.write_text("- {abbr: GGO, expansion: ground-glass opacity}\n")
    lex = load_lexicon(path)
    assert expand_abbreviations("Bilateral GGO. No PTX.", lex) == "Bilateral ground-glass opacity. No PTX."
    path.write_text("- {abbr: GGO, expansion: a}\n- {abbr: GGO, expansion: b}\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_lexicon(path)


@pytest.mark.parametrize("text,expanded", [
    ("No PTX. B/l effusions R>L. ETT 4 cm above carina.",
     "No pneumothorax. Bilateral effusions right greater than left. Endotracheal tube 4 cm above carina."),
    ("R IJ CVL tip in the mid SVC.", "Right internal jugular central venous line tip in the mid superior vena cava."),
    ("NG tube tip below the GE junction.", "Nasogastric tube tip below the gastroesophageal junction."),
    ("Blunting of the L CP angle.", "Blunting of the left costophrenic angle."),
    ("s/p CABG w/ sternotomy wires, w/o PTX.", "Status post CABG with sternotomy wires, without pneumothorax."),
    ("RLL opacity c/w PNA, h/o COPD.",
     "Right lower lobe opacity consistent with pneumonia, history of chronic obstructive pulmonary disease."),
    ("Eval for CHF; r/o PNA.", "Evaluation for congestive heart failure; rule out pneumonia."),
    ("bilat effusions L > R.", "Bilateral effusions left greater than right."),
    ("?PNA. ? PTX.", "Questionable pneumonia. Questionable pneumothorax."),
    ("IMPRESSION:\n1. b/l effusions.", "IMPRESSION:\n1. Bilateral effusions."),
    ("PA and lateral CXR.", "Posteroanterior and lateral chest radiograph."),
    ("Portable AP view. PA/lat CXR.", "Portable anteroposterior view. Posteroanterior/lateral chest radiograph."),
    ("Pacer leads in the RA and RV.", "Pacer leads in the right atrium and right ventricle."),
    ("Sat 92% on RA.", "Sat 92% on room air."),
    ("Enlarged AP window.", "Enlarged aortopulmonary window."),
    ("R 5th rib fracture. L-sided pacemaker.", "Right 5th rib fracture. Left-sided pacemaker."),
])
def test_expansion_table(text, expanded):
    assert expand_abbreviations(text) == expanded


@pytest.mark.parametrize("text", [
    "History of RA.",  # rheumatoid arthritis or right atrium: never guessed
    "Known ASD, no change.",
    "Prominent PA.",
    "No PE seen.",
    "LAD stent.",
    "Rule out PE or MS.",
])
def test_ambiguous_abbreviations_are_detected_but_never_blindly_expanded(text):
    assert expand_abbreviations(text) == text
    hits = [h for h in find_abbreviations(text) if h.ambiguous]
    assert hits and all(h.expansion is None for h in hits)


@pytest.mark.parametrize("text", [
    "Level of the carina. Grade R and L markers.",  # lone letters are not side markers
    "The lungs are clear. Cardiomegaly.",
    "Aptx, LATERAL, Ra, pa, ett, Ptx.",  # wrong case, or inside other words
    "Is there pneumonia? No.",  # a question mark ends a question
    "CHEST (PA AND LAT) ... PICCOLO, PTXs, ETTE",
])
def test_no_false_hits(text):
    keys = [h.key for h in find_abbreviations(text)]
    assert keys in ([], ["PA", "LAT"]), keys


def test_hit_fields_and_positions():
    text = "Small L effusion. R>L. ETT 5 cm."
    hits = find_abbreviations(text)
    assert [(h.abbr, h.key, h.expansion, h.ambiguous, h.keep) for h in hits] == [
        ("L", "L", "left", False, False), ("R>L", "R>L", "right greater than left", False, False),
        ("ETT", "ETT", "endotracheal tube", False, False), ("cm", "cm", "centimeters", False, True)]
    assert all(text[h.start:h.end] == h.abbr for h in hits)
    assert expand_abbreviations(text) == "Small left effusion. Right greater than left. Endotracheal tube 5 cm."


def _features(raw: str, given=None) -> dict:
    text = normalize_report(raw)
    return style_features(text, parse_sections(text, given=given), find_abbreviations(text))


def test_style_features_abbreviated_impression_only_report():
    f = _features("HISTORY: ___ y/o M, ?PNA.\nCOMPARISON: ___.\n"
                  "IMPRESSION:\n1. Possible RLL PNA, likely atelectasis vs aspiration.\n2. Stable b/l effusions. RA?")
    assert f["impression_only"] and not f["findings_only"] and f["numbered_impression"]
    assert f["comparison"]  # "Stable", in the impression
    assert f["hedging"] == 3  # possible, likely, vs; the "?PNA" of the history does not count
    assert f["deid_tokens"] == 2
    assert f["ambiguous_abbreviations"] == ["RA"]
    assert f["abbreviation_count"] == 7  # y/o ? PNA RLL PNA b/l RA
    assert f["n_words"] == 21 and f["abbreviation_density"] == round(700 / 21, 3)  # [DEID] counts as a word
    assert f["n_chars"] == len(normalize_report("HISTORY: ___ y/o M, ?PNA.\nCOMPARISON: ___.\n"
                                                "IMPRESSION:\n1. Possible RLL PNA, likely atelectasis vs "
                                                "aspiration.\n2. Stable b/l effusions. RA?"))


def test_style_features_full_report_and_hedge_phrases():
    f = _features("FINDINGS: Lungs are clear. Opacity may represent atelectasis; pneumonia cannot be excluded."
                  "\nIMPRESSION: Findings concerning for pneumonia. ETT 4 cm above the carina.")
    assert not f["impression_only"] and not f["findings_only"] and not f["numbered_impression"]
    assert f["hedging"] == 3 and not f["comparison"] and f["deid_tokens"] == 0
    assert f["abbreviation_count"] == 1 and f["ambiguous_abbreviations"] == []  # "cm" is a unit, not counted
    f = _features("ignored", given={"findings": "Lungs clear.", "summary": "1-NORMAL"})
    assert f["findings_only"] and f["hedging"] == 0 and f["n_words"] == 1
    assert _features("")["abbreviation_density"] == 0.0
