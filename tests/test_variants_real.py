"""Error variants on radiologists' own reports (the real-language table, tests/data/labeler_real.yaml):
every rule error the gate accepts changes exactly one clinical fact, and the gate rejects, with a
reason, the "errors" issue 12 found that change nothing clinically.

The fact count here is written independently of the gate: a report's facts are its present and
negated findings (each with the side, severity and numbers stated with it) and its present devices
(name, position); one fact changes when one finding or one device differs, however many sentences
restate it."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import pytest

from components.reports.label_table import real_table
from components.reports.labeler import label_report
from components.reports.sections import labelable_text, parse_sections
from components.variants.base import ERROR_CATEGORIES, ERROR_KIND, VariantRequest
from components.variants.devices import device_mentions, find_devices
from components.variants.rules_backend import RulesBackend
from components.variants.gate import check_error

OBS = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
       "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices")
_NUMBER = re.compile(r"\d+(?:\.\d+)?\s*(?:cm|mm)\b")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")


@lru_cache(maxsize=None)
def read(text: str):
    return label_report(labelable_text(parse_sections(text)))


def facts(text: str) -> tuple[dict, Counter]:
    """({observation: (value, side, severity, numbers)}, Counter of present devices (name, position))."""
    r = read(text)
    numbers: dict[str, list[str]] = {}
    devices: Counter = Counter()
    for sentence in _SENT.split(labelable_text(parse_sections(text))):
        s = label_report(sentence)
        present = [o for o, _, _, st in s.mentions if st in ("positive", "uncertain")]
        nums = [n.replace(" ", "") for n in _NUMBER.findall(sentence)]
        found = find_devices(sentence) if "Support Devices" in present else []
        if found:
            devices.update((d.name, d.position) for d in found)
        elif present and nums:  # a device the lexicon does not know counts as Support Devices
            numbers.setdefault(present[0], []).extend(nums)
    obs = {o: (r.labels[o], r.laterality.get(o), r.severity.get(o), tuple(numbers.get(o, ())))
           for o in OBS if r.labels[o] is not None}
    return obs, devices


def changed_facts(a: str, b: str) -> int:
    (fa, da), (fb, db) = facts(a), facts(b)
    n = sum(fa.get(o) != fb.get(o) for o in set(fa) | set(fb) if o != "Support Devices")
    gone, new = da - db, db - da
    if gone or new:  # one device renamed / moved / added (with the label it brings), restated alike
        return n + (1 if len(set(gone)) <= 1 and len(set(new)) <= 1 else len(gone) + len(new))
    return n + (fa.get("Support Devices") != fb.get("Support Devices"))


@pytest.fixture(scope="module")
def accepted():
    texts = list(dict.fromkeys(t for _, t, _ in real_table()))
    requests = [VariantRequest(str(i), t, ERROR_KIND, c, 0) for i, t in enumerate(texts) for c in ERROR_CATEGORIES]
    out = []
    for request, v in zip(requests, RulesBackend().generate(requests)):
        if v.text is None:
            continue
        reason = check_error(request.error_category, read(request.text), read(v.text), request.text, v.text,
                             device_mentions)
        out.append((request, v, reason))
    return out


def test_every_accepted_error_changes_exactly_one_clinical_fact(accepted):
    per_category = Counter()
    bad = []
    for request, v, reason in accepted:
        if reason is None:
            per_category[request.error_category] += 1
            if changed_facts(request.text, v.text) != 1:
                bad.append((request.error_category, request.text, v.text, v.detail))
    assert not bad, bad[:5]
    assert all(per_category[c] >= 5 for c in ERROR_CATEGORIES), per_category
    # the backend's own checks and the gate agree: nearly every variant it makes is accepted
    made = Counter(r.error_category for r, _, _ in accepted)
    assert sum(per_category.values()) >= 0.9 * sum(made.values()), (per_category, made)


def test_attribute_and_negation_errors_edit_present_findings_only(accepted):
    seen = Counter()
    for request, v, reason in accepted:
        if reason is not None or request.error_category not in ("severity", "location", "false_negation"):
            continue
        a, b = read(request.text), read(v.text)
        if request.error_category == "false_negation":
            edited = [o for o in OBS if a.labels[o] != b.labels[o]]
        else:
            attr = "severity" if request.error_category == "severity" else "laterality"
            x, y = getattr(a, attr), getattr(b, attr)
            edited = [o for o in set(x) | set(y) if x.get(o) != y.get(o)]
        assert len(edited) == 1 and a.labels[edited[0]] in (1.0, -1.0), (request.text, v.text)
        seen[request.error_category] += 1
    assert min(seen.values()) >= 5, seen


def _gate(category, src, var):
    return check_error(category, read(src), read(var), src, var, device_mentions)


@pytest.mark.parametrize("category,src,var,reason", [
    # a severity change of a negated finding is no error
    ("severity", "No large pleural effusion. Small left pneumothorax.", "No small pleural effusion. Small left pneumothorax.",
     "severity_changes=0"),
    # a false negation of a negative statement is an equivalent
    ("false_negation", "No pleural effusion. Small left pneumothorax.", "There is no pleural effusion. Small left pneumothorax.",
     "label_changes=0"),
    ("false_negation", "No pleural effusion.", "There is a pleural effusion.", "not_a_negated_present_finding:0.0->1.0"),
    # an opposite is about the same anatomy
    ("opposite_sentence", "Minimally displaced scaphoid fracture. No pneumothorax.", "No rib fracture. No pneumothorax.",
     "anatomy_changed:scaphoid->rib"),
    # a device moved between two normal positions is not a malposition
    ("device_position", "ETT terminates 4 cm above the carina.", "ETT terminates 5 cm above the carina.",
     "not_correct_to_incorrect_position"),
    ("device_position", "NG tube tip in the stomach.", "NG tube tip in the duodenum.", "not_correct_to_incorrect_position"),
    # a removed device is not renamed
    ("device_name", "The endotracheal tube has been removed.", "The nasogastric tube has been removed.", "not_a_present_device"),
    # a number in a negative statement changes nothing
    ("measurement", "No nodule larger than 5 mm. Small left effusion.", "No nodule larger than 9 mm. Small left effusion.",
     "not_a_present_finding:measurement"),
])
def test_gate_rejects_changes_of_no_clinical_meaning(category, src, var, reason):
    got = _gate(category, src, var)
    assert got is not None and got.startswith(reason), got


@pytest.mark.parametrize("category,src,var", [
    ("severity", "Small left pleural effusion.", "Large left pleural effusion."),
    ("false_negation", "Small left pleural effusion.", "No left pleural effusion."),
    ("opposite_sentence", "Minimally displaced scaphoid fracture.", "No scaphoid fracture."),
    ("device_position", "ETT terminates 4 cm above the carina.", "ETT terminates in the right mainstem bronchus."),
    ("measurement", "A 2.1 cm nodule in the right upper lobe.", "A 4.2 cm nodule in the right upper lobe."),
])
def test_gate_accepts_real_errors(category, src, var):
    assert _gate(category, src, var) is None


def test_rules_backend_writes_opposites_at_the_same_site():
    b = RulesBackend()
    text = "FINDINGS: Minimally displaced scaphoid fracture. No pneumothorax."
    for seed in range(6):
        v = b.generate([VariantRequest("x", text, ERROR_KIND, "opposite_sentence", seed)])[0]
        assert v.text is None or "rib" not in v.text, v.text
    v = b.generate([VariantRequest("x", text, ERROR_KIND, "false_negation", 0)])[0]
    assert "No scaphoid fracture." in v.text


def test_shuffle_keeps_inline_numbered_lists_and_style_stays_grammatical():
    b = RulesBackend()
    text = "IMPRESSION: 1. Right lower lobe pneumonia. 2. Small right pleural effusion. 3. No pneumothorax."
    for seed in range(5):
        v = b.generate([VariantRequest("x", text, "shuffle", None, seed)])[0]
        assert re.fullmatch(r"IMPRESSION: 1\. [A-Z][^.]+\. 2\. [A-Z][^.]+\. 3\. [A-Z][^.]+\.", v.text), v.text
        assert sorted(re.split(r" \d\. ", v.text)[1:]) == sorted(re.split(r" \d\. ", text)[1:])
    for terse in ("FINDINGS: Mediastinal contour within normal limits. Lungs clear. No effusion.",
                  "FINDINGS: Heart size normal. Sternotomy wires intact. Bibasilar atelectasis."):
        v = b.generate([VariantRequest("x", terse, "style_transfer", None, 0)])[0]
        assert "There are mediastinal contour" not in v.text and "There is a sternotomy wires" not in v.text, v.text
        assert "There is bibasilar atelectasis." in v.text or "Lungs" in terse
