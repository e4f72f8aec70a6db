"""The project's scope engine against maintained ConText / NegEx implementations, on the
real-language table (tests/data/labeler_real.yaml).

    python bench/labeler_context.py [--repeats 3]

All three read the same mentions (components.reports.labeler.find_mentions: same phrase lists,
unmentions, normal statements, de-identification blanking), so only the negation / uncertainty /
history step differs:
- `engine`: the project's clause-and-list scope (labeler.py).
- `medspacy_context`: medspacy's ConText with its default rules, on a tokenizer-only spaCy pipeline
  (spacy.blank("en") + sentencizer; no model download is possible). Negated -> 0, possible -> -1,
  historical / hypothetical -> not counted, as the engine does with its indication / history cues.
- `negspacy`: negspacy's NegEx with the en_clinical termset, same pipeline. Negation only.
Prints macro-F1 (bench.labeler.macro_f1), per pattern, and reports/s on one core for each.
Needs medspacy and negspacy installed; neither is a dependency of the project (see the commit
that kept the engine).
"""

from __future__ import annotations

import argparse
import json
import time

from components.reports.label_table import real_table, score_table
from components.reports.labeler import find_mentions, label_report, labels_from

GROUP = "medspacy_spans"


def _pipeline(kind: str):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    if kind == "medspacy_context":
        import medspacy  # noqa: F401  registers the medspacy_context factory

        nlp.add_pipe("medspacy_context", config={"input_span_type": "group", "span_group_name": GROUP})
    else:
        from negspacy.negation import Negex  # noqa: F401  registers the negex factory
        from negspacy.termsets import termset

        nlp.add_pipe("negex", config={"neg_termset": termset("en_clinical").get_patterns(), "span_keys": [GROUP]})
    return nlp


def make_labeler(kind: str):
    """A function text -> labels that uses `kind` ("medspacy_context" or "negspacy") for scope."""
    nlp = _pipeline(kind)
    sentencizer, scope = nlp.pipeline[0][1], nlp.pipeline[1][1]

    def label(text: str):
        prepared, found = find_mentions(text)
        if not found:
            return label_report(text).labels  # no mention: the same blank / No Finding as the engine
        doc = sentencizer(nlp.make_doc(prepared))
        spans, fixed = [], []
        for s, e, obs, status in found:
            span = doc.char_span(s, e, label=obs, alignment_mode="expand")
            if status is not None or span is None:
                fixed.append((obs, status or "positive"))
            else:
                spans.append(span)
        doc.spans[GROUP] = spans
        doc = scope(doc)
        out = []
        for span in doc.spans[GROUP]:
            if kind == "negspacy":
                out.append((span.label_, "negative" if span._.negex else "positive"))
            elif span._.is_historical or span._.is_hypothetical:
                out.append((span.label_, "history"))
            else:
                out.append((span.label_, "negative" if span._.is_negated else
                            "uncertain" if span._.is_uncertain else "positive"))
        return labels_from(out + fixed)

    return label


def _rate(label, texts: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for t in texts:
            label(t)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def run_context(repeats: int = 3) -> dict:
    rows = real_table()
    texts = [t for _, t, _ in rows]
    labelers = {"engine": lambda t: label_report(t).labels}
    for kind in ("medspacy_context", "negspacy"):
        labelers[kind] = make_labeler(kind)
    out = {}
    for name, label in labelers.items():
        score = score_table(rows, [label(t) for t in texts])
        out[name] = {"macro_f1": score["macro_f1"], "exact_accuracy": score["exact_accuracy"],
                     "per_pattern_macro_f1": score["per_pattern_macro_f1"],
                     "per_observation_f1": score["per_observation_f1"],
                     "reports_per_s_one_core": round(_rate(label, texts, repeats), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    print(json.dumps(run_context(parser.parse_args().repeats), indent=2))


if __name__ == "__main__":
    main()
