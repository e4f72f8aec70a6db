"""Support-device mentions in report text: which device, and where its tip is.

`device_mentions(text)` is what the variants gate compares for the device error categories
(add_device, device_name, device_position), and what the rules backend edits. Device names and
position phrases are data: data/devices.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data" / "devices.yaml"


@dataclass(frozen=True)
class DeviceMention:
    name: str  # canonical: "<side> <device>" for sided devices ("right PICC"), else the device key
    device: str  # the devices.yaml key ("PICC")
    side: str | None  # left | right | None
    start: int  # the written name, side included
    end: int
    type_start: int  # the written device type, side excluded (what a rename replaces)
    position: str  # the position phrase as written ("4 cm above the carina"); "" when none
    pos_start: int  # where the position phrase is (-1 when none)
    pos_end: int


@dataclass(frozen=True)
class _Lexicon:
    devices: dict
    name: re.Pattern
    types: list[tuple[str, re.Pattern]]
    sides: dict[str, re.Pattern]
    position: re.Pattern


@lru_cache(maxsize=1)
def lexicon() -> _Lexicon:
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    devices = data["devices"]
    types = [(k, re.compile(f"(?i:{v['pattern']})")) for k, v in devices.items()]
    # Upper-case single letters ("R PICC") are sides only as written; words in any case.
    side_alt = "|".join(f"(?:{s})" for s in data["sides"].values())
    side_alt = re.sub(r"\b([RL])\b", r"(?-i:\1)", side_alt)
    type_alt = "|".join(f"(?:{v['pattern']})" for v in devices.values())
    name = re.compile(rf"(?i)(?<![\w/-])(?:(?P<side>{side_alt})\s+)?(?P<type>{type_alt})(?![\w-])")
    sides = {s: re.compile(rf"(?:{p.replace('R', '(?-i:R)').replace('L', '(?-i:L)')})", re.I)
             for s, p in data["sides"].items()}
    return _Lexicon(devices, name, types, sides, re.compile(data["position"]))


def _device_of(written: str) -> str:
    for key, pattern in lexicon().types:
        if pattern.fullmatch(written):
            return key
    return written.lower()


def _side_of(written: str | None) -> str | None:
    if not written:
        return None
    for side, pattern in lexicon().sides.items():
        if pattern.fullmatch(written):
            return side
    return None


def find_devices(text: str) -> list[DeviceMention]:
    """Every device named in `text`, with the position phrase that follows it in its sentence (up to
    the next device's name; failing that, to the sentence end: "ETT and NGT in standard position")."""
    lex = lexicon()
    found = list(lex.name.finditer(text))
    out = []
    for i, m in enumerate(found):
        device = _device_of(m.group("type"))
        side = _side_of(m.group("side")) if lex.devices.get(device, {}).get("sided") else None
        stop = _sentence_end(text, m.end())
        nxt = found[i + 1].start() if i + 1 < len(found) and found[i + 1].start() < stop else stop
        p = lex.position.search(text, m.end(), nxt) or lex.position.search(text, m.end(), stop)
        start = m.start() if side else m.start("type")
        name = f"{side} {device}" if side else device
        out.append(DeviceMention(name, device, side, start, m.end(), m.start("type"),
                                 p.group().strip() if p else "", p.start() if p else -1,
                                 p.start() + len(p.group().rstrip()) if p else -1))
    return out


_END = re.compile(r"[.!?](?=\s|$)|\n")


def _sentence_end(text: str, pos: int) -> int:
    m = _END.search(text, pos)
    return m.start() if m else len(text)


def position_status(device: str, position: str) -> str | None:
    """"normal" when `position` (as written) is where `device` belongs, "malposition" when it is
    where it must not be, None when unknown or not stated. From devices.yaml: the `positions` and
    `malpositions` the backend writes, plus the `normal` / `malposition` patterns for real phrasing."""
    spec = lexicon().devices.get(device, {})
    here = re.sub(r"\s+", " ", re.sub(r"^(?:tip |the )", "", position.lower())).replace("the ", "").strip()
    if not here:
        return None
    for status, written, patterns in (("malposition", "malpositions", "malposition"), ("normal", "positions", "normal")):
        if any(here == p.lower().replace("the ", "") for p in spec.get(written, ())) or \
                any(re.search(p, here) for p in spec.get(patterns, ())):
            return status
    return None


def device_mentions(text: str) -> list[tuple[str, str]]:
    """(device name, position phrase) for every support device named in `text`, in order.

    The name is canonical, so abbreviations read the same as full terms: "ETT" and "endotracheal
    tube" are both "endotracheal tube", "R PICC" is "right PICC", "R IJ CVL" is "right internal
    jugular central line". The position is the phrase as written after the name in its sentence
    ("4 cm above the carina", "in the stomach", "at the cavoatrial junction"), "" when none is stated.
    """
    return [(d.name, d.position) for d in find_devices(text)]
