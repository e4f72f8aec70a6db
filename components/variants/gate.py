"""The validation gate: every variant is re-labelled with the project's labeler and must show the
change its kind promises (none for an equivalent rewrite, exactly one for an error)."""

from __future__ import annotations

import re
from collections import Counter

from components.chexpert import OBSERVATIONS
from components.reports.labeler import LabelResult

_PATHOLOGY = tuple(o for o in OBSERVATIONS if o != "No Finding")
_FINDING = (1.0, -1.0)  # positive or uncertain: what an equivalent rewrite must keep
_MEASUREMENT = re.compile(r"\b\d+(?:\.\d+)?\s*(?:x\s*\d+(?:\.\d+)?\s*)?(?:cm|mm)\b", re.IGNORECASE)


def _value(result: LabelResult, obs: str):
    return result.labels.get(obs)


def _changed(src: LabelResult, var: LabelResult) -> list[str]:
    return [o for o in _PATHOLOGY if _value(src, o) != _value(var, o)]


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
        return None if len(diff) == 1 else f"{attr}_changes={len(diff)}"
    if category in ("false_prediction", "false_negation", "opposite_sentence"):
        if len(changed) != 1:
            return f"label_changes={len(changed)}"
        a, b = _value(src, changed[0]), _value(var, changed[0])
        if category == "false_prediction" and not (a in (None, 0.0) and b == 1.0):
            return f"not_an_added_finding:{a}->{b}"
        if category == "false_negation" and not ({a, b} == {1.0, 0.0} or {a, b} == {-1.0, 0.0}):
            return f"not_a_negation_flip:{a}->{b}"
        return None
    if category == "measurement":
        if not same_labels:
            return "labels_changed"
        a, b = _MEASUREMENT.findall(src_text), _MEASUREMENT.findall(var_text)
        if len(a) != len(b):
            return "measurement_count_changed"
        diff = sum(x.replace(" ", "").lower() != y.replace(" ", "").lower() for x, y in zip(a, b))
        return None if diff == 1 else f"measurement_changes={diff}"
    src_dev, var_dev = devices(src_text), devices(var_text)
    if category == "add_device":
        others = [o for o in changed if o != "Support Devices"]
        if others:
            return "labels_changed"
        return None if len(var_dev) == len(src_dev) + 1 else f"device_count {len(src_dev)}->{len(var_dev)}"
    if not same_labels:
        return "labels_changed"
    if len(src_dev) != len(var_dev):
        return f"device_count {len(src_dev)}->{len(var_dev)}"
    names = Counter(n for n, _ in src_dev) != Counter(n for n, _ in var_dev)
    positions = Counter(p for _, p in src_dev) != Counter(p for _, p in var_dev)
    if category == "device_name":
        return None if names and not positions else "device_name_unchanged" if not names else "position_changed"
    if category == "device_position":
        return None if positions and not names else "device_position_unchanged" if not positions else "name_changed"
    raise ValueError(f"unknown error category {category!r}")
