"""The rule labeler: one table of sentences with expected labels, attributes, and a corpus check."""

from __future__ import annotations

import pytest

from components.reports.agreement import macro_f1
from components.synth.corpus import synthetic_corpus
from components.chexpert import OBSERVATIONS
from components.reports.labeler import label_report, label_reports, rules

P, N, U = 1.0, 0.0, -1.0

# (text, expected labels for the observations named; any observation not named must be blank,
#  except No Finding, checked separately below only where named)
CASES = [
    # plain mentions and synonyms
    ("Small left pleural effusion.", {"Pleural Effusion": P, "No Finding": None}),
    ("Blunting of the right costophrenic angle.", {"Pleural Effusion": P}),
    ("Right upper lobe pneumonia.", {"Pneumonia": P}),
    ("Bibasilar atelectasis.", {"Atelectasis": P}),
    ("Patchy airspace opacity at the left base.", {"Lung Opacity": P}),
    ("2.1 cm right upper lobe nodule.", {"Lung Lesion": P}),
    ("Moderate pulmonary edema.", {"Edema": P}),
    ("Acute fracture of the left 5th rib.", {"Fracture": P}),
    ("Right apical pleural thickening.", {"Pleural Other": P}),
    ("Moderate cardiomegaly.", {"Cardiomegaly": P}),
    ("The heart is mildly enlarged.", {"Cardiomegaly": P}),
    ("The mediastinum is moderately widened.", {"Enlarged Cardiomediastinum": P}),
    ("Small right pneumothorax.", {"Pneumothorax": P}),
    # negation
    ("No pneumothorax.", {"Pneumothorax": N, "No Finding": P}),
    ("Pneumothorax is not seen.", {"Pneumothorax": N}),
    ("There is no evidence of pneumothorax.", {"Pneumothorax": N}),
    ("Lungs are clear without focal consolidation.", {"Consolidation": N}),
    ("Previously seen left pleural effusion has resolved.", {"Pleural Effusion": N}),
    ("No findings to suggest pneumonia.", {"Pneumonia": N}),
    # list scope
    ("No effusion or pneumothorax.", {"Pleural Effusion": N, "Pneumothorax": N}),
    ("No focal consolidation, pleural effusion or pneumothorax.",
     {"Consolidation": N, "Pleural Effusion": N, "Pneumothorax": N}),
    ("No pleural effusion, pneumothorax, or focal consolidation is seen.",
     {"Consolidation": N, "Pleural Effusion": N, "Pneumothorax": N}),
    ("Focal consolidation, effusion, or pneumothorax is not identified.",
     {"Consolidation": N, "Pleural Effusion": N, "Pneumothorax": N}),
    # scope ends: a new statement after a comma, "but", a new sentence
    ("Small left effusion, no pneumothorax.", {"Pleural Effusion": P, "Pneumothorax": N}),
    ("No pneumothorax, small left effusion.", {"Pleural Effusion": P, "Pneumothorax": N}),
    ("No pneumothorax, but there is a small left effusion.", {"Pleural Effusion": P, "Pneumothorax": N}),
    ("Small left effusion, pneumothorax is not seen.", {"Pleural Effusion": P, "Pneumothorax": N}),
    ("No pneumothorax. Endotracheal tube in place.", {"Pneumothorax": N, "Support Devices": P}),
    # uncertainty
    ("Cannot exclude pneumonia.", {"Pneumonia": U}),
    ("Findings may represent atelectasis.", {"Atelectasis": U}),
    ("Possible small left effusion.", {"Pleural Effusion": U}),
    ("Pneumonia is not excluded.", {"Pneumonia": U}),
    ("Pneumonia cannot be excluded.", {"Pneumonia": U}),
    ("Infection can not be ruled out.", {"Pneumonia": U}),
    ("No evidence to exclude pneumothorax.", {"Pneumothorax": U}),
    ("Findings concerning for pneumonia.", {"Pneumonia": U}),
    ("Atelectasis vs. pneumonia in the right lower lobe.", {"Atelectasis": U, "Pneumonia": U}),
    ("Right lower lobe opacity, likely atelectasis.", {"Lung Opacity": P, "Atelectasis": U}),
    ("Bibasilar opacities likely reflect atelectasis, though infection cannot be excluded.",
     {"Lung Opacity": P, "Atelectasis": U, "Pneumonia": U}),
    ("Heart size is borderline.", {"Cardiomegaly": U}),
    # comparison phrasing
    ("No new consolidation.", {"Consolidation": N}),
    ("Unchanged moderate right pleural effusion.", {"Pleural Effusion": P}),
    ("Stable mild cardiomegaly.", {"Cardiomegaly": P}),
    ("No change in small left pleural effusion.", {"Pleural Effusion": P}),
    ("Interval improvement in pulmonary edema.", {"Edema": P}),
    # aggregation: positive beats uncertain beats negative
    ("Possible pneumonia. Right lower lobe pneumonia.", {"Pneumonia": P}),
    ("No pneumonia. Cannot exclude pneumonia.", {"Pneumonia": U}),
    # normal-heart / mediastinum statements
    ("Heart size is normal.", {"Cardiomegaly": N, "No Finding": P}),
    ("Normal heart size.", {"Cardiomegaly": N}),
    ("The heart is not enlarged.", {"Cardiomegaly": N}),
    ("Normal cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": N}),
    ("The cardiomediastinal silhouette is within normal limits.", {"Enlarged Cardiomediastinum": N}),
    ("Mediastinal contours are normal.", {"Enlarged Cardiomediastinum": N}),
    ("Heart size and mediastinal contours are normal.", {"Cardiomegaly": N, "Enlarged Cardiomediastinum": N}),
    ("Lungs are clear.", {"No Finding": P}),
    ("No acute cardiopulmonary process.", {"No Finding": P}),
    # devices
    ("ETT terminates 4 cm above the carina.", {"Support Devices": P, "No Finding": P}),
    ("Right PICC with tip in the lower SVC.", {"Support Devices": P}),
    ("Interval removal of the NG tube.", {"Support Devices": N}),
    ("The endotracheal and nasogastric tubes have been removed.", {"Support Devices": N}),
    ("Median sternotomy wires are intact.", {"Support Devices": P}),
    # unmentions
    ("Small pericardial effusion.", {"No Finding": P}),
    ("Massive hiatal hernia.", {}),
    # abbreviations, placeholders, raw report text
    ("No PTX. B/l effusions.", {"Pneumothorax": N, "Pleural Effusion": P}),
    ("Small L effusion w/ blunting of L CP angle.", {"Pleural Effusion": P}),
    ("COMPARISON: ___.\n[DEID] XXXX No pneumothorax. Small ___ right effusion.",
     {"Pneumothorax": N, "Pleural Effusion": P}),
    ("Comparison: None. Findings: No pneumothorax.", {"Pneumothorax": N}),
    ("INDICATION: Evaluate for pneumonia.\n\nFINDINGS: The lungs are clear. No effusion.\n\n"
     "IMPRESSION: No acute process.", {"Pleural Effusion": N, "No Finding": P}),
    ("Hx: r/o PNA, ___ y/o F w/\n SOB.\nComp: prior.\nNo PTX.", {"Pneumothorax": N}),
    (" FINDINGS:  No focal consolidation. No\n pneumothorax. Small right pleural\n effusion is present.",
     {"Consolidation": N, "Pneumothorax": N, "Pleural Effusion": P}),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0][:50] for c in CASES])
def test_labels(text, expected):
    labels = label_report(text).labels
    assert set(labels) == set(OBSERVATIONS)
    for obs in OBSERVATIONS:
        if obs == "No Finding" and obs not in expected:
            continue
        assert labels[obs] == expected.get(obs), (obs, labels)


@pytest.mark.parametrize("text,obs,side,severity", [
    ("Possible small left effusion.", "Pleural Effusion", "left", "small"),
    ("Moderate bilateral pleural effusions.", "Pleural Effusion", "bilateral", "moderate"),
    ("B/L effusions.", "Pleural Effusion", "bilateral", None),
    ("Small L PTX.", "Pneumothorax", "left", "small"),
    ("Moderate to large right pleural effusion.", "Pleural Effusion", "right", "moderate to large"),
    ("Pneumothorax at the right apex is large.", "Pneumothorax", "right", "large"),
    ("Mild bibasilar atelectasis.", "Atelectasis", "bilateral", "mild"),
    ("Lingular opacity.", "Lung Opacity", "left", None),
    ("RLL consolidation.", "Consolidation", "right", None),
    ("Right lower lobe pneumonia and left upper lobe nodule.", "Lung Lesion", "left", None),
    ("Right lower lobe pneumonia and left upper lobe nodule.", "Pneumonia", "right", None),
    ("The heart is severely enlarged.", "Cardiomegaly", None, "severe"),
    ("Left-sided pacemaker with leads in the right atrium and right ventricle.", "Support Devices", "left", None),
    ("No left pleural effusion.", "Pleural Effusion", None, None),  # attributes only for findings
])
def test_laterality_and_severity(text, obs, side, severity):
    result = label_report(text)
    assert result.laterality.get(obs) == side, result.laterality
    assert result.severity.get(obs) == severity, result.severity


def test_mentions_point_at_the_text():
    text = "Small left effusion, no pneumothorax. Possible pneumonia."
    mentions = label_report(text).mentions
    assert [(o, text[s:e].lower(), st) for o, s, e, st in mentions] == [
        ("Pleural Effusion", "effusion", "positive"), ("Pneumothorax", "pneumothorax", "negative"),
        ("Pneumonia", "pneumonia", "uncertain")]


@pytest.mark.parametrize("text", ["", "   \n ", None, "___ XXXX [DEID]", "INDICATION: cough.\n"])
def test_empty_text_is_all_blank(text):
    assert label_report(text).labels == {o: None for o in OBSERVATIONS}


def test_no_finding_rule():
    # devices and negatives leave No Finding; any positive or uncertain pathology blanks it
    assert label_report("ETT in place. No effusion.").labels["No Finding"] == 1.0
    assert label_report("Possible atelectasis.").labels["No Finding"] is None
    assert label_report("Small effusion.").labels["No Finding"] is None


def test_label_reports_and_data_files():
    assert [r.labels for r in label_reports(["No PTX.", ""])] == [label_report("No PTX.").labels,
                                                                    label_report("").labels]
    assert set(rules().mentions) == set(OBSERVATIONS) - {"No Finding"}


def test_synthetic_corpus_macro_f1():
    corpus = synthetic_corpus(500, seed=1)
    truth = [labels for _, _, labels in corpus]
    pred = [label_report(text).labels for _, text, _ in corpus]
    assert macro_f1(truth, pred) >= 0.95


def test_macro_f1_definition():
    blank = {o: None for o in OBSERVATIONS}
    truth = [dict(blank, Edema=1.0), dict(blank, Edema=0.0)]
    assert macro_f1(truth, truth) == 1.0
    # Edema: class 1 F1 = 1, class 0 F1 = 0 (predicted blank) -> 0.5; the other observations have no value
    assert macro_f1(truth, [dict(blank, Edema=1.0), blank]) == 0.5
