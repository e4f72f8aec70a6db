"""Clean + label throughput on one core: the per-study work of `cxr clean`, on synthetic reports.

    python bench/clean.py [--reports 3000] [--seed 0]

Reports are rendered in memory (the generator's styles and noise, with the planted-PHI rate of
params.yaml), then `components.reports.clean.clean_study` runs over all of them in this process,
followed by a per-step breakdown. Goal: >= 500 reports/s. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from components.params import CleanParams, SynthParams
from components.privacy.phi import detect_phi
from components.reports.abbreviations import find_abbreviations
from components.reports.clean import clean_study
from components.reports.labeler import label_report
from components.reports.normalize import normalize_report
from components.reports.sections import labelable_text, parse_sections
from components.synth.phi import plant_report_phi
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth, subjects_for


def corpus(n: int, seed: int) -> list[dict]:
    cfg = SynthParams()
    subjects = subjects_for(n, seed, cfg.studies_per_subject)
    rng = np.random.default_rng([seed, 99])
    studies = []
    for i in range(n):
        truth = sample_truth(i, subjects[i], seed, cfg)
        text = render_report(truth, np.random.default_rng([seed, i, 1]), cfg.noise)
        if rng.random() < cfg.traps.report_phi:
            text, _ = plant_report_phi(text, rng)
        studies.append({"study_id": str(truth.study_id), "subject_id": str(truth.subject_id), "split": "train",
                        "source": "synth", "report": text, "sections": {}, "image_ids": [], "views": [],
                        "dicom_identifying_attributes": [], "burned_in_annotation": False})
    return studies


def timed(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    studies = corpus(args.reports, args.seed)
    cfg = CleanParams()
    clean_study(studies[0], cfg)  # imports and regex compilation happen once, outside the timing
    total = min(timed(lambda s: clean_study(s, cfg), studies) for _ in range(2))
    texts = [normalize_report(s["report"]) for s in studies]
    parsed = [parse_sections(t) for t in texts]
    steps = {
        "normalize": timed(lambda s: normalize_report(s["report"]), studies),
        "sections": timed(parse_sections, texts),
        "abbreviations": timed(find_abbreviations, texts),
        "phi_detection": timed(detect_phi, texts),
        "labeler": timed(lambda p: label_report(labelable_text(p)), parsed),
    }
    n = len(studies)
    print(json.dumps({
        "benchmark": "clean", "reports": n, "cores": 1,
        "reports_per_second": round(n / total, 1), "goal_reports_per_second": 500,
        "ms_per_report": round(1000 * total / n, 3),
        "steps_ms_per_report": {k: round(1000 * v / n, 3) for k, v in steps.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
