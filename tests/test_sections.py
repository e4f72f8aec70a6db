"""Section parsing on MIMIC-CXR, Open-I and CheXpert Plus formats, and on 300 synthetic reports."""

from __future__ import annotations

import numpy as np
import pytest

from components.params import SynthNoise, SynthParams
from components.reports.normalize import normalize_report
from components.reports.sections import CANONICAL, labelable_text, parse_sections
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth

MIMIC = """\
 WET READ: ___ ___ ___ 10:33 PM
  Low lung volumes.  No focal consolidation.
 ______________________________________________________________________________
                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with ?pleural effusion  // ?pleural effusion
 eval for pneumonia

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  ___

 FINDINGS:

 Cardiac size cannot be evaluated.  Large left pleural effusion is new.  Small
 right effusion is new.  The upper lungs are clear.  Right lower lobe
 opacities are better seen in prior CT.  There is no pneumothorax.

 IMPRESSION:

 1. Large left pleural effusion.
 2. Small right effusion.
"""

MIMIC_ADDENDUM = """\
                                 FINAL ADDENDUM
 ADDENDUM:  Findings discussed with Dr. ___ at 10:15 AM.
 ______________________________________________________________________________
                                 FINAL REPORT
 HISTORY:  Hypoxia.

 FINDINGS:  Moderate pulmonary edema.

 IMPRESSION:  Moderate pulmonary edema.
"""

OPENI = ("Comparison: None.\nIndication: XXXX-year-old male, chest pain.\n"
         "Findings: The heart is normal in size. No pneumothorax.\nImpression: No acute cardiopulmonary disease.")


def test_mimic_report_with_wet_read():
    p = parse_sections(MIMIC)
    s = p.sections
    assert set(s) == {"wet_read", "examination", "indication", "technique", "comparison", "findings", "impression"}
    assert s["indication"].endswith("eval for pneumonia")  # the wrapped indication line stays indication
    assert s["findings"].startswith("Cardiac size") and s["findings"].endswith("no pneumothorax.")
    assert s["impression"] == "1. Large left pleural effusion.\n2. Small right effusion."
    assert p.headers[:3] == ["WET READ", "FINAL REPORT", "EXAMINATION"]
    assert not p.impression_only and not p.findings_only
    text = labelable_text(p)
    assert "pneumonia" not in text and "focal consolidation" not in text  # no indication, no wet read
    assert "Large left pleural effusion" in text


def test_normalised_mimic_parses_the_same():
    raw, clean = parse_sections(MIMIC).sections, parse_sections(normalize_report(MIMIC)).sections
    assert clean["findings"] == raw["findings"] and clean["impression"] == raw["impression"]
    assert clean["indication"] == raw["indication"].replace("___", "[DEID]")


def test_addendum_at_top_and_final_report_after_it():
    p = parse_sections(MIMIC_ADDENDUM)
    assert p.sections["addendum"].startswith("Findings discussed with")
    assert p.sections["history"] == "Hypoxia."
    assert labelable_text(p).endswith("Findings discussed with Dr. ___ at 10:15 AM.")


@pytest.mark.parametrize("text", [
    "FINDINGS\nNo pneumothorax.\nIMPRESSION\nNo acute process.",  # headers alone in capitals, no colon
    "Findings: No pneumothorax.\nImpression: No acute process.",
    "findings : No pneumothorax.\nimpression :\nNo acute process.",
    "FINDINGS: No pneumothorax. IMPRESSION: No acute process.",  # inline IMPRESSION
    "Findings: No pneumothorax. Impression: No acute process.",
    "  FINDINGS:  No pneumothorax.\n\n  CONCLUSION:  No acute process.",
    "FINDINGS: No pneumothorax.\nOPINION: No acute process.",
    "FINDINGS: No pneumothorax.\nIMPRESSIONS: No acute process.",
])
def test_header_variants(text):
    s = parse_sections(text).sections
    assert s == {"findings": "No pneumothorax.", "impression": "No acute process."}


def test_words_that_are_not_headers():
    text = "FINDINGS: Findings suggestive of edema. The impression is of overall improvement: no effusion."
    assert parse_sections(text).sections == {"findings": text.removeprefix("FINDINGS: ")}
    # Title case without a colon is prose, not a header.
    assert "impression" not in parse_sections("Findings: Impression\nof the trachea on the left.").sections


def test_findings_and_impression_merged():
    for header in ("FINDINGS AND IMPRESSION:", "FINDINGS/IMPRESSION:", "Findings and impression:"):
        p = parse_sections(f"INDICATION: Cough.\n{header} No acute process.")
        assert p.sections == {"indication": "Cough.", "impression": "No acute process."}
        assert p.merged_findings_impression and not p.impression_only and not p.findings_only


def test_numbered_impression_inline_and_listed():
    p = parse_sections("IMPRESSION: 1. Small effusion. 2. No pneumothorax.")
    assert p.sections["impression"] == "1. Small effusion. 2. No pneumothorax." and p.impression_only
    p = parse_sections("FINDINGS: Effusion.\nIMPRESSION:\n1) Small effusion.\n2) Atelectasis.")
    assert p.sections["impression"] == "1) Small effusion.\n2) Atelectasis."


@pytest.mark.parametrize("text,impression_only,findings_only", [
    ("IMPRESSION: No acute cardiopulmonary process.", True, False),
    ("HISTORY: Fever.\n\nIMPRESSION:\nNo acute process.", True, False),
    ("FINDINGS: Lungs are clear. No effusion.", False, True),
    ("FINDINGS: Clear.\nIMPRESSION: Normal.", False, False),
    ("No acute process.", False, False),
])
def test_impression_and_findings_only_flags(text, impression_only, findings_only):
    p = parse_sections(text)
    assert (p.impression_only, p.findings_only) == (impression_only, findings_only)


def test_open_i_text_and_given_sections():
    p = parse_sections(OPENI)
    assert set(p.sections) == {"comparison", "indication", "findings", "impression"}
    given = {"comparison": "None.", "indication": "XXXX-year-old male, chest pain.",
             "findings": "The heart is normal in size.", "impression": "No acute disease."}
    g = parse_sections("ignored text", given=given)
    assert g.given and g.sections == given and g.headers == list(given)


def test_chexpert_plus_given_keys_map_to_canonical_names():
    given = {"clinical_history": "Cough. Eval for pneumonia.", "comparison": "None", "technique": "PA",
             "findings": "Lungs clear.\n\n  No effusion.", "impression": "1. Normal chest.",
             "summary": "1-NORMAL", "end_of_impression": "I have personally reviewed the images.",
             "procedure_comments": "Two views.", "narrative": "", "history": "Smoker."}
    p = parse_sections("FINDINGS: something else", given=given)
    assert p.sections["history"] == "Cough. Eval for pneumonia.\nSmoker."
    assert p.sections["technique"] == "PA\nTwo views."
    assert p.sections["findings"] == "Lungs clear.\nNo effusion."
    assert p.sections["other"] == "1-NORMAL\nI have personally reviewed the images."
    assert labelable_text(p) == "Lungs clear.\nNo effusion.\n1. Normal chest."
    assert parse_sections("IMPRESSION: Edema.", given={"findings": "  "}).sections == {"impression": "Edema."}


def test_unheaded_reports_never_expose_the_indication():
    p = parse_sections("Eval for pneumonia.\nPA and lateral chest.\nNo focal consolidation.")
    assert p.headers == [] and labelable_text(p) == "PA and lateral chest.\nNo focal consolidation."
    p = parse_sections("Hx: 66M w/ cough, r/o PNA.\nComp: ___.\nRUL opacity. No PTX.")
    assert p.sections["history"] == "66M w/ cough, r/o PNA." and p.sections["comparison"] == "___."
    assert labelable_text(p) == "RUL opacity. No PTX."


def test_short_section_ends_after_its_line_in_wrapped_text():
    text = (" HISTORY:  41 year old male with\n dyspnea.\n 2.2 cm left lower lobe nodule. Left\n"
            " upper lobe pneumonia. No focal opacity\n or pneumothorax.\n")
    p = parse_sections(text)
    assert p.sections["history"] == "41 year old male with dyspnea."
    assert labelable_text(p) == ("2.2 cm left lower lobe nodule. Left upper lobe pneumonia. "
                                 "No focal opacity or pneumothorax.")


def test_empty_and_odd_input():
    assert parse_sections("").sections == {} and labelable_text(parse_sections("")) == ""
    assert parse_sections("IMPRESSION:").sections == {}
    assert parse_sections(":::\n\n___").sections == {"other": ":::\n___"}


def _synthetic(n: int = 300):
    cfg, noise = SynthParams(), SynthNoise(deid_token_rate=0.6, typo_rate=0.1, wrap_rate=0.5)
    for i in range(n):
        truth = sample_truth(i, 1, 11, cfg)
        yield truth, render_report(truth, np.random.default_rng([11, i]), noise)


def test_300_synthetic_reports_parse():
    styles = set()
    for truth, text in _synthetic():
        styles.add(truth.style)
        for version in (text, normalize_report(text)):
            p = parse_sections(version)
            assert set(p.sections) <= set(CANONICAL)
            body = labelable_text(p)
            assert body.strip(), version
            assert "year old" not in body and "year-old" not in body, version  # history never leaks
            if truth.style in ("full", "numbered"):
                assert {"findings", "impression"} <= set(p.sections), version
            if truth.style == "impression_only" and "IMPRESSION" in version:
                assert p.impression_only
    assert styles == {"full", "impression_only", "abbreviated", "terse_normal", "numbered"}
