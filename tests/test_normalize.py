"""Report normalisation: characters, placeholders, boilerplate, wrapped lines, idempotence."""

from __future__ import annotations

import numpy as np
import pytest

from components.params import SynthNoise, SynthParams
from components.reports.normalize import DEID_TOKEN, count_placeholders, normalize_report
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth

WRAPPED = """\
                                 FINAL REPORT
 EXAMINATION:  CHEST (PORTABLE AP)

 INDICATION:  ___ year old man with hypoxia and fever, please evaluate for
 interval change.

 FINDINGS:

 The endotracheal tube terminates 4 cm above the carina.  The nasogastric tube
 courses below the diaphragm.  Moderate bilateral pleural effusions are
 unchanged.

 IMPRESSION:

 1)  Stable moderate bilateral effusions.
 2)  Lines and tubes in standard position.
"""

WRAPPED_CLEAN = """\
FINAL REPORT
EXAMINATION: CHEST (PORTABLE AP)

INDICATION: [DEID] year old man with hypoxia and fever, please evaluate for interval change.

FINDINGS:

The endotracheal tube terminates 4 cm above the carina. The nasogastric tube courses below the \
diaphragm. Moderate bilateral pleural effusions are unchanged.

IMPRESSION:

1. Stable moderate bilateral effusions.
2. Lines and tubes in standard position.
"""


def test_mimic_wrapped_report():
    assert normalize_report(WRAPPED) == WRAPPED_CLEAN


def test_unwrapped_lines_stay_apart():
    text = "Hx: 66M w/ cough.\nRUL opacity.\nModerate bibasilar atelectasis.\nNo PTX."
    assert normalize_report(text) == text + "\n"


@pytest.mark.parametrize("raw,clean", [
    ("___ year old", "[DEID] year old"),
    ("Dr. __ and ________ here", "Dr. [DEID] and [DEID] here"),
    ("XXXX-year-old male", "[DEID]-year-old male"),
    ("Comparison: XXXX.", "Comparison: [DEID]."),
    ("XXXXX XXX", "[DEID] [DEID]"),
    ("MAXXX, XX and XXXXa stay", "MAXXX, XX and XXXXa stay"),
    ("seen by [**First Name (Titles) 123**] on [**2101-3-4**]", "seen by [DEID] on [DEID]"),
    ("already [DEID] token", "already [DEID] token"),
    ("a single _ underscore", "a single _ underscore"),
])
def test_placeholders_become_one_token(raw, clean):
    assert DEID_TOKEN == "[DEID]"
    assert normalize_report(raw) == clean + "\n"


def test_count_placeholders_raw_and_normalised():
    raw = "___ year old. XXXX. [**Name**]."
    assert count_placeholders(raw) == 3 == count_placeholders(normalize_report(raw))


def test_characters_and_line_endings():
    raw = "\ufeffFINDINGS:\u00a0\u201cSmall\u201d effusion \u2013 left\u2026\r\nIMPRESSION:\tNo\x00 PTX\u200b.\r"
    assert normalize_report(raw) == 'FINDINGS: "Small" effusion - left...\nIMPRESSION: No PTX.\n'
    assert normalize_report("ﬁndings: ½ cm") == "findings: 1⁄2 cm\n"  # NFKC


@pytest.mark.parametrize("raw,clean", [
    ("IMPRESSION:\n1) Edema.\n2) Effusion.", "IMPRESSION:\n1. Edema.\n2. Effusion."),
    ("IMPRESSION:\n1 - Edema.\n2 - Effusion.", "IMPRESSION:\n1. Edema.\n2. Effusion."),
    ("IMPRESSION:\n1.Edema.\n2.  Effusion.", "IMPRESSION:\n1. Edema.\n2. Effusion."),
    ("IMPRESSION: 1) Edema. 2) Effusion.", "IMPRESSION: 1. Edema. 2. Effusion."),
    ("1.5 cm nodule.\n2 - 3 mm nodules.", "1.5 cm nodule.\n2 - 3 mm nodules."),  # not list numbers
])
def test_list_numbering(raw, clean):
    assert normalize_report(raw) == clean + "\n"


@pytest.mark.parametrize("line", [
    "I have personally reviewed the images and agree with the findings of the resident.",
    "I have reviewed the images for this examination and agreed with the report transcribed above.",
    "Electronically signed by: Dr. [DEID] on [DEID] 10:15 AM",
    "Dictated by: [DEID]",
    "Signed by [DEID], MD",
    "This report was finalized on [DEID] at 10:15.",
])
def test_attestation_boilerplate_removed(line):
    assert normalize_report(f"IMPRESSION: No acute process.\n\n{line}") == "IMPRESSION: No acute process.\n"
    assert normalize_report(f"IMPRESSION: No acute process. {line}") == "IMPRESSION: No acute process.\n"


@pytest.mark.parametrize("line", [
    "Dr. Holloway was notified at 10:15 by telephone.",
    "Findings discussed with Dr. Jane Holloway by telephone at 10:15 on 03/14/2021.",
    "NOTIFICATION: The findings were discussed with Dr. ___ by ___ on the telephone on ___ at 2:47 PM.",
])
def test_notification_lines_survive_for_the_phi_step(line):
    out = normalize_report(f"IMPRESSION: Small left pneumothorax.\n\n{line}\n\nElectronically signed by X")
    kept = line.replace("___", DEID_TOKEN)
    assert out == f"IMPRESSION: Small left pneumothorax.\n\n{kept}\n"


def test_blank_and_empty():
    assert normalize_report("") == "" and normalize_report(" \n\r\n\t ") == ""
    assert normalize_report("A.\n\n\n\n\nB.") == "A.\n\nB.\n"


def test_idempotent_on_handmade_and_300_synthetic_reports():
    cfg, noise = SynthParams(), SynthNoise(deid_token_rate=0.6, typo_rate=0.1, wrap_rate=0.5)
    texts = [WRAPPED, WRAPPED_CLEAN, "Hx: 66M.\nNo PTX.", "A\r\nB\rC", "IMPRESSION: 1) a 2) b"]
    for i in range(300):
        texts.append(render_report(sample_truth(i, 1, 5, cfg), np.random.default_rng([5, i]), noise))
    for text in texts:
        once = normalize_report(text)
        assert normalize_report(once) == once, text
        assert "___" not in once and "XXXX" not in once and "  " not in once
