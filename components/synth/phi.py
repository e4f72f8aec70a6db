"""Plant realistic PHI into a rendered report: the trap the de-identification stage must catch."""

from __future__ import annotations

import re

import numpy as np

from components.synth.report_writer import pick

PHI_KINDS = ("person_name", "date", "time", "mrn", "phone", "email", "street_address")

_FIRST = ("Jane", "Michael", "Maria", "David", "Susan", "Robert", "Linda", "James", "Priya", "Carlos", "Aisha",
          "Thomas", "Emily", "Kenji")
_LAST = ("Holloway", "Martinez", "Chen", "Okafor", "Nguyen", "Schmidt", "Patel", "Kowalski", "Brennan",
         "Johansson", "Whitaker", "Delgado", "Fitzgerald", "Moreau")
_STREETS = ("Maple Street", "Beacon Street", "Oak Avenue", "Harrison Avenue", "Elm Road", "Cedar Lane",
            "Longwood Drive", "Pleasant Street")
_DOMAINS = ("bidmc.org", "partners.org", "stmarys-hospital.org", "mgh.harvard.edu", "gmail.com")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_HISTORY_LINE = re.compile(r"(?im)^[ \t]*(INDICATION|HISTORY|Hx|Indication|History):")


def _phi_values(rng: np.random.Generator) -> dict[str, str]:
    y, m, d = int(rng.integers(2008, 2024)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hh, mm = int(rng.integers(0, 24)), int(rng.integers(0, 60))
    area, line = int(rng.integers(201, 990)), int(rng.integers(100, 10000))
    first, last = pick(rng, _FIRST), pick(rng, _LAST)
    return {
        "name": pick(rng, (f"{first} {last}", last)),
        "date": pick(rng, (f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}",
                            f"{_MONTHS[m - 1]} {d}, {y}")),
        "time": pick(rng, (f"{hh:02d}:{mm:02d}", f"{(hh % 12) or 12}:{mm:02d} {'AM' if hh < 12 else 'PM'}")),
        "mrn": str(int(rng.integers(1_000_000, 99_999_999))),
        "phone": pick(rng, (f"{area}-555-{line:04d}", f"({area}) 555-{line:04d}", f"{area}.555.{line:04d}")),
        "email": f"{pick(rng, _FIRST)[0].lower()}{pick(rng, _LAST).lower()}@{pick(rng, _DOMAINS)}",
        "address": f"{int(rng.integers(2, 1000))} {pick(rng, _STREETS)}",
    }


def plant_report_phi(text: str, rng: np.random.Generator) -> tuple[str, list[dict]]:
    """Insert realistic PHI into a report (a trap for the de-identification stage). Returns the new text
    and one dict per planted item: {"kind": ..., "value": exact substring inserted}. Kinds:
    person_name (with titles such as Dr., and without), date, time, mrn, phone, email, street_address.
    Plant 2-4 items, always at least one, in natural places (e.g. "Findings discussed with Dr. Jane Holloway
    by telephone at 10:15 on 03/14/2021", "MRN: 4829103", "Call 617-555-0143", an e-mail in a notification
    line, a street address in the history).

    A person_name value is the name only ("Jane Holloway"), never its title ("Dr.") or suffix ("RN")."""
    n = int(rng.integers(2, 5))
    kinds = [PHI_KINDS[int(i)] for i in sorted(rng.choice(len(PHI_KINDS), size=n, replace=False))]
    v = _phi_values(rng)
    items: list[dict] = []
    top: list[str] = []  # lines above the report (MRN, exam date) and below it (notifications, contacts)
    bottom: list[str] = []

    def add(kind: str, key: str) -> str:
        items.append({"kind": kind, "value": v[key]})
        return v[key]

    if "person_name" in kinds:
        name = add("person_name", "name")
        titled = " " not in name or rng.random() < 0.6  # a bare surname always carries its title
        who = f"Dr. {name}" if titled else pick(rng, (f"{name}, RN,", name))
        line = f"Findings discussed with {who} by telephone"
        if "time" in kinds:
            line += f" at {add('time', 'time')}"
        if "date" in kinds:
            line += f" on {add('date', 'date')}"
        bottom.append(line + ".")
    else:
        if "date" in kinds and "time" in kinds:
            top.append(f"Study performed on {add('date', 'date')} at {add('time', 'time')}.")
        elif "date" in kinds:
            top.append(pick(rng, ("Exam date: {}.", "DATE OF SERVICE: {}")).format(add("date", "date")))
        elif "time" in kinds:
            bottom.append(f"Preliminary read given at {add('time', 'time')}.")
    if "mrn" in kinds:
        top.insert(0, pick(rng, ("MRN: {}", "MR#: {}", "Medical record number: {}")).format(add("mrn", "mrn")))
    if "phone" in kinds:
        bottom.append(pick(rng, ("Call {} with questions.", "Please page {} for questions.",
                                  "Reading room: {}.")).format(add("phone", "phone")))
    if "email" in kinds:
        bottom.append(pick(rng, ("Notification sent to {}.", "Report e-mailed to {}.")).format(
            add("email", "email")))
    lines = text.rstrip("\n").split("\n")
    if "street_address" in kinds:
        address = f"SOCIAL HISTORY:  Lives at {add('street_address', 'address')}."
        at = next((i for i, line in enumerate(lines) if _HISTORY_LINE.match(line)), 0)
        indent = re.match(r"[ \t]*", lines[at]).group()
        lines.insert(at, indent + address)  # a line of its own, so a wrapped history sentence stays intact
    return "\n".join(top + lines + ([""] + bottom if bottom else [])) + "\n", items
