"""The unified ranking protocol: candidate reports from K systems ranked against the ground truth by
judges (LLM, rule, human), aggregated as mean rank and pairwise win rate, and judges compared.

A ranking is {study_id: {system: rank}}, rank 1 = closest to the ground truth; ties share a rank.
Candidates are shown to judges blinded, as letters in a per-study seeded order.
"""

from __future__ import annotations

import csv
import io
import random
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.chexpert import OBSERVATIONS
from components.evaluation.stats import DEFAULT_RESAMPLES, bootstrap_ci

# The rubric, shared by the LLM prompt and the rule judge: a false finding weighs more than an omission,
# more than a wrong location, more than a wrong severity (each strictly more than any run of the next).
RULE_WEIGHTS = {"false_finding": 1000.0, "omission": 100.0, "location": 10.0, "severity": 1.0}
HUMAN_COLUMNS = ("study_id", "candidate", "reference_report", "candidate_report", "rank")


@dataclass(frozen=True)
class RankingItem:
    study_id: str
    reference: str  # the ground-truth report
    candidates: dict[str, str]  # system -> candidate report

    def blinded(self, seed: int = 0) -> list[tuple[str, str]]:
        """(letter, system) in the seeded presentation order of this study."""
        systems = sorted(self.candidates)
        random.Random(f"{seed}:{self.study_id}").shuffle(systems)
        return list(zip(string.ascii_uppercase, systems))


def competition_ranks(penalties: dict[str, float]) -> dict[str, int]:
    """1 + the number of systems with a strictly lower penalty (ties share the better rank)."""
    return {s: 1 + sum(q < p for q in penalties.values()) for s, p in penalties.items()}


def rule_penalty(reference, candidate, weights: dict = RULE_WEIGHTS) -> tuple[float, dict]:
    """Rubric penalty of a candidate against the reference from their labeler results (LabelResult):
    a positive finding absent from the reference is false, a reference positive missing is omitted;
    shared positives with different laterality / severity are wrong location / severity. Uncertain
    mentions are neither (the labeler cannot tell). "No Finding" is derived from the others: not scored."""
    counts = dict.fromkeys(weights, 0)
    for o in OBSERVATIONS:
        if o == "No Finding":
            continue
        ref, cand = reference.labels.get(o), candidate.labels.get(o)
        if cand == 1.0 and ref not in (1.0, -1.0):
            counts["false_finding"] += 1
        elif ref == 1.0 and cand not in (1.0, -1.0):
            counts["omission"] += 1
        elif ref == 1.0 and cand == 1.0:
            lr, lc = reference.laterality.get(o), candidate.laterality.get(o)
            counts["location"] += bool(lr and lc and lr != lc)
            sr, sc = reference.severity.get(o), candidate.severity.get(o)
            counts["severity"] += bool(sr and sc and sr != sc)
    return sum(weights[k] * v for k, v in counts.items()), counts


def rule_judge(items: list[RankingItem], weights: dict = RULE_WEIGHTS) -> dict[str, dict[str, int]]:
    """The offline judge: the rubric applied with the project's labeler. Deterministic."""
    from components.reports.labeler import label_report

    out = {}
    for item in items:
        ref = label_report(item.reference)
        out[item.study_id] = competition_ranks(
            {s: rule_penalty(ref, label_report(t), weights)[0] for s, t in item.candidates.items()})
    return out


def rank_matrix(rankings: dict[str, dict[str, float]], systems: list[str]) -> tuple[list[str], np.ndarray]:
    """(study ids, (studies, systems) ranks, NaN where a system was not ranked)."""
    studies = sorted(rankings)
    m = np.full((len(studies), len(systems)), np.nan)
    for i, s in enumerate(studies):
        for j, name in enumerate(systems):
            if name in rankings[s]:
                m[i, j] = rankings[s][name]
    return studies, m


def aggregate(rankings: dict[str, dict[str, float]], systems: list[str], resamples: int = DEFAULT_RESAMPLES,
              seed: int = 0) -> dict:
    """Mean rank per system and pairwise win rate (a beats b = 1, tie = 0.5) with bootstrap 95% intervals
    over studies."""
    _, m = rank_matrix(rankings, systems)
    n = len(m)
    out: dict = {"n_studies": n, "mean_rank": {}, "win_rate": {}}
    for j, s in enumerate(systems):
        col = m[:, j]

        def stat(i, col=col):
            v = col[i]
            return float(np.nanmean(v)) if np.isfinite(v).any() else None
        ok = np.isfinite(col)
        out["mean_rank"][s] = {"value": float(col[ok].mean()) if ok.any() else None, "n": int(ok.sum()),
                               "ci": bootstrap_ci(stat, n, resamples, seed) if ok.any() else None}
    for a in range(len(systems)):
        for b in range(len(systems)):
            if a == b:
                continue
            both = np.isfinite(m[:, a]) & np.isfinite(m[:, b])
            win = np.where(m[:, a] < m[:, b], 1.0, np.where(m[:, a] == m[:, b], 0.5, 0.0))[both]
            ci = bootstrap_ci(lambda i, w=win: float(w[i].mean()), len(win), resamples, seed) if len(win) else None
            out["win_rate"][f"{systems[a]} vs {systems[b]}"] = {
                "value": float(win.mean()) if len(win) else None, "n": int(len(win)), "ci": ci}
    return out


def agreement(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], systems: list[str]) -> dict:
    """Kendall's tau-b and Spearman's rho between two judges' rankings of the same study, averaged over
    the studies both ranked; a study where either judge ranks every system equal has no correlation:
    counted in n_undefined."""
    from scipy.stats import kendalltau, spearmanr

    taus, rhos, undefined = [], [], 0
    for study in sorted(set(a) & set(b)):
        shared = [s for s in systems if s in a[study] and s in b[study]]
        x, y = [a[study][s] for s in shared], [b[study][s] for s in shared]
        if len(shared) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
            undefined += 1
            continue
        taus.append(kendalltau(x, y).statistic)
        rhos.append(spearmanr(x, y).statistic)
    return {"kendall_tau": float(np.mean(taus)) if taus else None,
            "spearman": float(np.mean(rhos)) if rhos else None,
            "n_studies": len(taus), "n_undefined": undefined}


def export_human_template(items: list[RankingItem], path: str | Path, seed: int = 0) -> Path:
    """A CSV for human raters: one row per (study, blinded candidate), an empty `rank` to fill in.
    The letter -> system key is not in it: `import_human_rankings` recomputes it from the same seed."""
    from components.io import write_bytes_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HUMAN_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        for letter, system in item.blinded(seed):
            writer.writerow({"study_id": item.study_id, "candidate": letter, "reference_report": item.reference,
                             "candidate_report": item.candidates[system], "rank": ""})
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))
    return Path(path)


def import_human_rankings(path: str | Path, items: list[RankingItem], seed: int = 0
                          ) -> tuple[dict[str, dict[str, int]], list[dict]]:
    """(rankings, problems) from a filled-in template. A study is taken only when every one of its
    candidates has an integer rank in 1..K; otherwise each problem is reported with its reason, and a
    study with no rank at all is simply not rated yet (reason `unrated`)."""
    keys = {item.study_id: dict(item.blinded(seed)) for item in items}
    given: dict[str, dict[str, str]] = {}
    problems: list[dict] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(HUMAN_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a ranking template, missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            study, letter = row["study_id"], row["candidate"]
            if study not in keys or letter not in keys[study]:
                problems.append({"line": line, "study_id": study, "reason": "unknown_study_or_candidate"})
                continue
            given.setdefault(study, {})[letter] = (row["rank"] or "").strip()
    rankings = {}
    for study, letters in keys.items():
        values = given.get(study, {})
        if not any(values.values()):
            problems.append({"study_id": study, "reason": "unrated"})
            continue
        ranks, bad = {}, None
        for letter, system in letters.items():
            v = values.get(letter, "")
            if not v.isdigit() or not 1 <= int(v) <= len(letters):
                bad = f"rank_not_1_to_{len(letters)}: candidate {letter} = {v!r}"
                break
            ranks[system] = int(v)
        if bad:
            problems.append({"study_id": study, "reason": bad})
        else:
            rankings[study] = ranks
    return rankings, problems
