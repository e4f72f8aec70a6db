"""Patient-level train/val/test split: every study of a subject lands in the same split."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")


def subject_split(subject_id: str, fractions: dict[str, float], seed: int) -> str:
    """Stable assignment from a hash of (seed, subject): adding subjects never moves existing ones."""
    digest = hashlib.sha256(f"{seed}:{subject_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for name in SPLITS:
        edge += fractions[name]
        if u < edge:
            return name
    return SPLITS[-1]


def assign_splits(subject_of: dict[str, str], given: dict[str, str | None], fractions: dict[str, float],
                  seed: int) -> dict[str, tuple[str, str]]:
    """(split, origin) per study id of `subject_of` (the kept studies; `given` may list more).

    A source-supplied split is kept exactly as given (origin "source"), so that results stay
    comparable with others on the official split; a leak in it (one subject in two splits) is left
    for the checks to report, not silently repaired. A study the source left without a split
    follows its subject's first given split (also "source"); a subject with none is hashed
    ("assigned": only these are held to the split proportions).
    """
    subject_given: dict[str, str] = {}
    for study, subject in subject_of.items():
        if given.get(study):
            subject_given.setdefault(subject, given[study])
    out = {}
    for study, subject in subject_of.items():
        if given.get(study):
            out[study] = (given[study], "source")
        elif subject in subject_given:
            out[study] = (subject_given[subject], "source")
        else:
            out[study] = (subject_split(subject, fractions, seed), "assigned")
    return out
