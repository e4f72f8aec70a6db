"""The validation gate: every variant is re-labelled with the project's labeler and must show the
change its kind promises (none for an equivalent rewrite, exactly one for an error).

An error must change the clinical meaning: severity, location, measurement and device edits only of
a finding or device that is present (positive or uncertain); a false negation only of a present
finding; a false prediction only of an absent one; an opposite or negated sentence about the same
anatomy; a device position moved from a correct to an incorrect one. Anything else is rejected with
a reason ("no large effusion" -> "no small effusion" changes nothing)."""

from __future__ import annotations

import re
from collections import Counter

from components.chexpert import OBSERVATIONS
from components.reports.labeler import LabelResult, label_report
from components.variants.anatomy import sites
from components.variants.devices import find_devices, position_status

_PATHOLOGY = tuple(o for o in OBSERVATIONS if o != "No Finding")
_FINDING = (1.0, -1.0)  # positive or uncertain: what an equivalent rewrite must keep
_MEASUREMENT = re.compile(r"\b\d+(?:\.\d+)?\s*(?:x\s*\d+(?:\.\d+)?\s*)?(?:cm|mm)\b", re.IGNORECASE)


def _value(result: LabelResult, obs: str):
    return result.labels.get(obs)


def _changed(src: LabelResult, var: LabelResult) -> list[str]:
    return [o for o in _PATHOLOGY if _value(src, o) != _value(var, o)]


_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SPLIT.split(text) if s.strip()]


def _replaced_sites(src_text: str, var_text: str) -> tuple[frozenset, frozenset]:
    """Sites named by the sentences the variant removed, and by those it added."""
    a, b = _sentences(src_text), _sentences(var_text)
    gone, new = [s for s in a if s not in b], [s for s in b if s not in a]
    return frozenset().union(*map(sites, gone)), frozenset().union(*map(sites, new))


def _sentence_at(text: str, pos: int) -> str:
    start = max(text.rfind(". ", 0, pos), text.rfind("\n", 0, pos)) + 1
    end = min((i for i in (text.find(". ", pos), text.find("\n", pos)) if i >= 0), default=len(text))
    return text[start:end + 1]


def _states_present(sentence: str, obs: str | None = None) -> bool:
    labels = label_report(sentence).labels
    return any(labels[o] in _FINDING for o in ([obs] if obs else _PATHOLOGY))


def check_equivalent(kind: str, src: LabelResult, var: LabelResult) -> str | None:
    """Same positive and uncertain findings, nothing contradicted; a stated negative may be dropped
    only by the kinds whose job is to drop text (omission, split)."""
    for obs in _PATHOLOGY:
        a, b = _value(src, obs), _value(var, obs)
        if a == b:
            continue
        if a in _FINDING or b in _FINDING:
            return f"label_changed:{obs}"
        if not (a == 0.0 and b is None and kind in ("omission", "split")):
            return f"label_changed:{obs}"
    for attr in ("laterality", "severity"):
        if getattr(src, attr) != getattr(var, attr):
            return f"{attr}_changed"
    return None


def check_error(category: str, src: LabelResult, var: LabelResult, src_text: str, var_text: str,
                devices) -> str | None:
    """Exactly the intended single change; `devices(text)` lists (device name, position) mentions."""
    changed = _changed(src, var)
    same_labels = not changed
    if category in ("severity", "location"):
        attr = "severity" if category == "severity" else "laterality"
        if not same_labels:
            return "labels_changed"
        a, b = getattr(src, attr), getattr(var, attr)
        diff = [o for o in set(a) | set(b) if a.get(o) != b.get(o)]
        if len(diff) != 1:
            return f"{attr}_changes={len(diff)}"
        if _value(src, diff[0]) not in _FINDING:  # the attribute of a negated or absent finding
            return f"not_a_present_finding:{diff[0]}"
        return None if diff[0] in a and diff[0] in b else f"{attr}_added_or_removed:{diff[0]}"
    if category in ("false_prediction", "false_negation", "opposite_sentence"):
        if len(changed) != 1:
            return f"label_changes={len(changed)}"
        a, b = _value(src, changed[0]), _value(var, changed[0])
        if category == "false_prediction" and not (a in (None, 0.0) and b == 1.0):
            return f"not_an_added_finding:{a}->{b}"
        if category == "false_negation" and not (a in _FINDING and b == 0.0):
            return f"not_a_negated_present_finding:{a}->{b}"
        if category != "false_prediction":
            gone, new = _replaced_sites(src_text, var_text)
            if gone != new:
                return f"anatomy_changed:{'/'.join(sorted(gone)) or '-'}->{'/'.join(sorted(new)) or '-'}"
        return None
    if category == "measurement":
        if not same_labels:
            return "labels_changed"
        a, b = list(_MEASUREMENT.finditer(src_text)), list(_MEASUREMENT.finditer(var_text))
        if len(a) != len(b):
            return "measurement_count_changed"
        diff = [y for x, y in zip(a, b) if x.group().replace(" ", "").lower() != y.group().replace(" ", "").lower()]
        if len(diff) != 1:
            return f"measurement_changes={len(diff)}"
        return None if _states_present(_sentence_at(var_text, diff[0].start()), None) or \
            _states_present(_sentence_at(var_text, diff[0].start()), "Support Devices") else "not_a_present_finding:measurement"
    src_dev, var_dev = devices(src_text), devices(var_text)
    if category == "add_device":
        others = [o for o in changed if o != "Support Devices"]
        if others:
            return "labels_changed"
        return None if len(var_dev) == len(src_dev) + 1 else f"device_count {len(src_dev)}->{len(var_dev)}"
    if not same_labels:
        return "labels_changed"
    if _value(src, "Support Devices") != 1.0:
        return "not_a_present_device"
    if len(src_dev) != len(var_dev):
        return f"device_count {len(src_dev)}->{len(var_dev)}"
    names = Counter(n for n, _ in src_dev) != Counter(n for n, _ in var_dev)
    positions = Counter(p for _, p in src_dev) != Counter(p for _, p in var_dev)
    if category == "device_name":
        return None if names and not positions else "device_name_unchanged" if not names else "position_changed"
    if category == "device_position":
        if not positions or names:
            return "device_position_unchanged" if not positions else "name_changed"
        moved = [(a, b) for a, b in zip(find_devices(src_text), find_devices(var_text)) if a.position != b.position]
        bad = [f"{a.device}: {a.position or '-'} ({position_status(a.device, a.position)}) -> {b.position or '-'} "
               f"({position_status(b.device, b.position)})" for a, b in moved
               if position_status(a.device, a.position) == "malposition"
               or position_status(b.device, b.position) != "malposition"]
        return f"not_correct_to_incorrect_position:{bad[0]}" if bad else None
    raise ValueError(f"unknown error category {category!r}")
