"""Structured ground truth for one synthetic study, and its seeded sampler.

The truth is the single source from which both the report text and the images are rendered, so
every positive finding is both written and visible, at the same side, zone and size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from components.chexpert import NEGATIVE, OBSERVATIONS, PATHOLOGIES, POSITIVE, UNCERTAIN

SIDES = ("left", "right")
ZONES = ("upper", "middle", "lower")

# Devices and the positions a report states for them.
DEVICE_POSITIONS: dict[str, tuple[str, ...]] = {
    "endotracheal tube": ("3 cm above the carina", "4 cm above the carina", "5 cm above the carina",
                          "1 cm above the carina"),
    "nasogastric tube": ("tip in the stomach", "tip in the distal esophagus"),
    "right PICC": ("tip in the lower SVC", "tip at the cavoatrial junction"),
    "left PICC": ("tip in the lower SVC", "tip at the cavoatrial junction"),
    "right internal jugular central line": ("tip in the mid SVC", "tip at the cavoatrial junction"),
    "left internal jugular central line": ("tip in the mid SVC", "tip at the cavoatrial junction"),
    "pacemaker": ("leads in the right atrium and right ventricle",),
    "sternotomy wires": ("intact",),
    "right chest tube": ("tip at the right apex",),
    "left chest tube": ("tip at the left apex",),
}

# (observation, relative prevalence among abnormal studies)
_FINDING_TABLE: tuple[tuple[str, float], ...] = (
    ("Enlarged Cardiomediastinum", 0.06),
    ("Cardiomegaly", 0.22),
    ("Lung Opacity", 0.18),
    ("Lung Lesion", 0.07),
    ("Edema", 0.12),
    ("Consolidation", 0.10),
    ("Pneumonia", 0.08),
    ("Atelectasis", 0.20),
    ("Pneumothorax", 0.08),
    ("Pleural Effusion", 0.25),
    ("Pleural Other", 0.04),
    ("Fracture", 0.05),
    ("Support Devices", 0.22),
)

# Observations a report commonly states as absent ("No pneumothorax").
_NEGATABLE = ("Pneumothorax", "Pleural Effusion", "Consolidation", "Edema", "Pneumonia",
              "Cardiomegaly", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum")


@dataclass(frozen=True)
class Finding:
    """One positive (or hedged) finding with the attributes a report and an image both show."""

    observation: str
    certainty: str = "positive"  # positive | uncertain (hedged in the report)
    laterality: str | None = None  # left | right | bilateral
    zone: str | None = None  # upper | middle | lower
    severity: str | None = None  # mild | moderate | severe, or small | moderate | large
    size_cm: float | None = None  # lesions: nodule < 3 cm <= mass
    rib: int | None = None  # fractures: rib number
    device: str | None = None  # Support Devices: a DEVICE_POSITIONS key
    position: str | None = None  # Support Devices: where its tip is
    change: str | None = None  # new | unchanged | increased | decreased (comparison studies)


@dataclass
class StudyTruth:
    """Everything the report and the images of one study are rendered from."""

    subject_id: int
    study_id: int
    findings: list[Finding]
    negatives: list[str]  # observations the report states as absent
    views: list[str]  # e.g. ["PA", "LATERAL"]
    style: str  # report style, a key of params.synth.styles
    comparison: bool  # the report compares with a prior study
    traps: list[str] = field(default_factory=list)  # planted traps, see synth.traps

    @property
    def is_normal(self) -> bool:
        return not any(f.observation in PATHOLOGIES for f in self.findings)

    def labels(self) -> dict[str, float | None]:
        """CheXpert labels implied by the truth: 1, -1 (hedged), 0 (stated absent), None (blank)."""
        labels: dict[str, float | None] = {o: None for o in OBSERVATIONS}
        for obs in self.negatives:
            labels[obs] = NEGATIVE
        for f in self.findings:
            value = POSITIVE if f.certainty == "positive" else UNCERTAIN
            if labels[f.observation] != POSITIVE:
                labels[f.observation] = value
        if self.is_normal:
            labels["No Finding"] = POSITIVE
        return labels

    def to_row(self) -> dict:
        row = {
            "subject_id": self.subject_id,
            "study_id": self.study_id,
            "views": list(self.views),
            "style": self.style,
            "comparison": self.comparison,
            "negatives": list(self.negatives),
            "findings": [{k: v for k, v in asdict(f).items()} for f in self.findings],
            "traps": list(self.traps),
        }
        row.update(self.labels())
        return row


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _sample_finding(obs: str, rng: np.random.Generator, uncertain_rate: float,
                    comparison: bool) -> list[Finding]:
    side = _choice(rng, SIDES)
    certainty = "uncertain" if obs in _HEDGEABLE and rng.random() < uncertain_rate else "positive"
    change = _choice(rng, ("new", "unchanged", "increased", "decreased")) if comparison else None
    common = dict(certainty=certainty, change=change)
    if obs == "Enlarged Cardiomediastinum":
        return [Finding(obs, severity=_choice(rng, ("mild", "moderate")), **common)]
    if obs == "Cardiomegaly":
        return [Finding(obs, severity=_choice(rng, ("mild", "moderate", "severe")), **common)]
    if obs == "Edema":
        return [Finding(obs, laterality="bilateral", severity=_choice(rng, ("mild", "moderate", "severe")),
                        **common)]
    if obs in ("Lung Opacity", "Consolidation", "Pneumonia"):
        lat = "bilateral" if obs == "Lung Opacity" and rng.random() < 0.2 else side
        return [Finding(obs, laterality=lat, zone=_choice(rng, ZONES, p=(0.2, 0.3, 0.5)), **common)]
    if obs == "Atelectasis":
        lat = "bilateral" if rng.random() < 0.3 else side
        return [Finding(obs, laterality=lat, zone="lower" if lat == "bilateral" else
                        _choice(rng, ZONES, p=(0.1, 0.3, 0.6)), severity=_choice(rng, ("mild", "moderate")),
                        **common)]
    if obs == "Lung Lesion":
        size = float(round(rng.uniform(0.8, 5.0), 1))
        return [Finding(obs, laterality=side, zone=_choice(rng, ZONES), size_cm=size, **common)]
    if obs == "Pneumothorax":
        return [Finding(obs, laterality=side, severity=_choice(rng, ("small", "moderate", "large"),
                                                               p=(0.6, 0.3, 0.1)), **common)]
    if obs == "Pleural Effusion":
        lat = "bilateral" if rng.random() < 0.35 else side
        return [Finding(obs, laterality=lat, severity=_choice(rng, ("small", "moderate", "large"),
                                                              p=(0.5, 0.35, 0.15)), **common)]
    if obs == "Pleural Other":
        return [Finding(obs, laterality=side, zone=_choice(rng, ("upper", "lower")), **common)]
    if obs == "Fracture":
        rib = int(rng.integers(3, 10))
        return [Finding(obs, laterality=side, rib=rib, zone="upper" if rib <= 5 else "middle",
                        change=change)]
    if obs == "Support Devices":
        n = 1 + int(rng.random() < 0.35)
        names = rng.choice(len(DEVICE_POSITIONS), size=n, replace=False)
        devices = [list(DEVICE_POSITIONS)[i] for i in sorted(names)]
        return [Finding(obs, device=d, position=_choice(rng, DEVICE_POSITIONS[d]),
                        laterality=_device_side(d), change=change) for d in devices]
    raise ValueError(f"no sampler for observation {obs!r}")


_HEDGEABLE = ("Pneumonia", "Atelectasis", "Consolidation", "Edema", "Lung Opacity", "Pleural Effusion",
              "Pneumothorax", "Lung Lesion")


def _device_side(device: str) -> str | None:
    for side in SIDES:
        if device.startswith(side):
            return side
    return "left" if device == "pacemaker" else None


def sample_truth(index: int, subject_id: int, seed: int, cfg) -> StudyTruth:
    """Sample study number `index`; depends only on (seed, index), never on order or workers."""
    rng = np.random.default_rng([seed, index])
    study_id = 50_000_000 + index
    comparison = bool(rng.random() < cfg.comparison_rate)
    findings: list[Finding] = []
    if rng.random() >= cfg.normal_rate:
        n_target = 1 + int(rng.poisson(1.0))
        names = [o for o, _ in _FINDING_TABLE]
        prevalence = np.array([p for _, p in _FINDING_TABLE])
        chosen = rng.choice(len(names), size=min(n_target, len(names)), replace=False,
                            p=prevalence / prevalence.sum())
        for i in sorted(chosen):
            findings += _sample_finding(names[i], rng, cfg.uncertain_rate, comparison)
    elif rng.random() < cfg.device_rate_normal:
        findings += _sample_finding("Support Devices", rng, 0.0, comparison)
    present = {f.observation for f in findings}
    n_neg = int(rng.integers(0, 4))
    candidates = [o for o in _NEGATABLE if o not in present]
    negatives = sorted(rng.choice(candidates, size=min(n_neg, len(candidates)), replace=False).tolist(),
                       key=OBSERVATIONS.index)
    frontal = "AP" if rng.random() < cfg.ap_rate else "PA"
    views = [frontal] + (["LATERAL"] if rng.random() < cfg.lateral_rate else [])
    styles = list(cfg.styles)
    weights = np.array([cfg.styles[s] for s in styles], dtype=float)
    style = _choice(rng, styles, p=weights / weights.sum())
    if style == "terse_normal" and findings:
        style = "full"  # a terse normal template cannot carry findings
    return StudyTruth(subject_id=subject_id, study_id=study_id, findings=findings, negatives=negatives,
                      views=views, style=style, comparison=comparison)


def subjects_for(n_studies: int, seed: int, studies_per_subject: float) -> list[int]:
    """Subject ids for each study index: patients with several studies, as in real archives."""
    rng = np.random.default_rng([seed, 7_919])
    n_subjects = max(1, math.ceil(n_studies / max(studies_per_subject, 1.0)))
    ids = 10_000_000 + rng.choice(10**7 - 1, size=n_subjects, replace=False)
    return [int(ids[i]) for i in rng.integers(0, n_subjects, size=n_studies)]
