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
                  seed: int) -> dict[str, str]:
    """Split per study id. A source-supplied split wins for the whole subject (first one seen)."""
    subject_given: dict[str, str] = {}
    for study, split in given.items():
        if split:
            subject_given.setdefault(subject_of[study], split)
    return {study: subject_given.get(subject) or subject_split(subject, fractions, seed)
            for study, subject in subject_of.items()}
