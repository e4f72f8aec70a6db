"""Which anatomical sites a sentence names, so an error that replaces a sentence can be held to the
same anatomy (data/sites.yaml): the rules backend writes negated and opposite sentences at the
original's site, and the gate rejects an opposite or false negation that moved it elsewhere."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data" / "sites.yaml"


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern, list[str]]:
    sites = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    names = list(sites)
    space = r"\s+"  # a space matches any whitespace run (hard-wrapped lines)
    alt = "|".join(f"(?P<s{i}>{'|'.join(p.replace(' ', space) for p in sites[n])})" for i, n in enumerate(names))
    return re.compile(rf"(?i)(?<![\w-])(?:{alt})(?![\w-])"), names


def _found(text: str) -> list[tuple[str, str]]:
    """(site, as written) in text order."""
    pattern, names = _pattern()
    return [(names[int(m.lastgroup[1:])], m.group()) for m in pattern.finditer(text)]


def sites(text: str) -> frozenset[str]:
    """The sites named in `text`."""
    return frozenset(s for s, _ in _found(text))


def site_phrase(text: str) -> str:
    """The sites of `text` as a template writes them before a finding ("upper lobe", "bibasilar",
    "scaphoid"); "" when none. A bilateral word keeps its "bi" ("bibasilar atelectasis")."""
    out = []
    for site, written in _found(text):
        word = site
        if written.lower().startswith("bi") and site in ("apical", "basilar"):
            word = "bi" + word
        if word not in out:
            out.append(word)
    return " ".join(out)
