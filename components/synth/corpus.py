"""Synthetic report texts with their truth, rendered in memory as `cxr synth` renders them (no files):
the labeler's agreement-with-the-renderer check."""

from __future__ import annotations

import numpy as np

from components.params import SynthParams
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth


def synthetic_corpus(n: int, seed: int, with_truth: bool = False) -> list[tuple]:
    """(style, report text, truth labels[, StudyTruth]) for n synthetic studies, as `cxr synth`
    renders them."""
    cfg = SynthParams(seed=seed)
    out = []
    for i in range(n):
        truth = sample_truth(i, 10_000_000 + i, seed, cfg)
        text = render_report(truth, np.random.default_rng([seed, i, 1]), cfg.noise)
        out.append((truth.style, text, truth.labels()) + ((truth,) if with_truth else ()))
    return out
