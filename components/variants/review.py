"""Human (or LLM-judge) review of accepted variants: `cxr variants review`.

The gate only knows what the labeler reads. Whether an accepted variant really is what it claims
(an equivalent rewrite, or exactly the one stated error) takes a reader, so:

- `export_review` draws a stratified sample of accepted variants, up to `per_stratum` per kind and
  error category (seeded, deterministic), and writes `sample.csv` (one row per variant: original and
  variant text side by side with the claimed change, and empty `verdict`, `reviewer`, `note` columns
  to fill) and `sample.md` (the same, readable).
- `import_verdicts` reads one or more filled copies of that CSV (one per reviewer, or one with a
  `reviewer` column) and writes `quality.csv` / `quality.json`: per kind and category, how many
  were reviewed, the share judged correct by the majority with a Wilson 95% interval, agreement
  between reviewers, and each reviewer's agreement with the majority. Rows that cannot be used
  (unknown variant, unreadable verdict) go to `invalid_verdicts.csv` with their reason.
Nothing is written into the variants output; every output folder is replaced atomically.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from components.io import atomic_dir, write_json

SAMPLE_COLUMNS = ["variant_id", "kind", "error_category", "claimed_change", "original", "variant",
                  "verdict", "reviewer", "note"]
# What reviewers write, read case-insensitively; "unsure" is recorded but is neither verdict.
VERDICTS = {"correct": True, "yes": True, "y": True, "1": True, "true": True, "accept": True, "ok": True,
            "incorrect": False, "no": False, "n": False, "0": False, "false": False, "reject": False, "wrong": False,
            "unsure": None, "?": None}


def _stratum(kind: str, category) -> str:
    return f"error:{category}" if isinstance(category, str) and category else kind


def export_review(variants_dir: str | Path, clean_dir: str | Path, out: str | Path, per_stratum: int = 20,
                  seed: int = 0) -> dict:
    variants_path = Path(variants_dir) / "variants.parquet"
    reports_path = Path(clean_dir) / "reports.parquet"
    for path, stage in ((variants_path, "cxr variants"), (reports_path, "cxr clean")):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `{stage}` first")
    if Path(out).resolve() in (Path(variants_dir).resolve(), Path(clean_dir).resolve()):
        raise ValueError(f"review output {out} would replace an input folder; choose another --out")
    table = pd.read_parquet(variants_path, columns=["variant_id", "study_id", "kind", "error_category", "text",
                                                    "valid", "detail"])
    originals = pd.read_parquet(reports_path, columns=["study_id", "text"])
    source = dict(zip(originals["study_id"], originals["text"]))
    accepted = table[table["valid"]].sort_values("variant_id")
    rng = np.random.default_rng(seed)
    rows, counts = [], {}
    for name, group in sorted(accepted.groupby(accepted.apply(lambda r: _stratum(r["kind"], r["error_category"]),
                                                               axis=1)), key=lambda g: g[0]):
        picked = group.iloc[np.sort(rng.choice(len(group), size=min(per_stratum, len(group)), replace=False))]
        counts[name] = {"accepted": len(group), "sampled": len(picked)}
        rows += [{"variant_id": r.variant_id, "kind": r.kind, "error_category": r.error_category or "",
                  "claimed_change": r.detail or "", "original": source.get(r.study_id, ""), "variant": r.text,
                  "verdict": "", "reviewer": "", "note": ""} for r in picked.itertuples()]
    with atomic_dir(out) as tmp:
        pd.DataFrame(rows, columns=SAMPLE_COLUMNS).to_csv(tmp / "sample.csv", index=False, quoting=csv.QUOTE_ALL)
        (tmp / "sample.md").write_text(_markdown(rows), encoding="utf-8")
        summary = {"sampled": len(rows), "per_stratum": per_stratum, "seed": seed, "strata": counts}
        write_json(tmp / "sample.json", summary)
    return summary


def _cell(text: str) -> str:
    return (text or "").strip().replace("|", "\\|").replace("\n", "<br>")


def _markdown(rows: list[dict]) -> str:
    out = ["# Variant review sample", "",
           "Mark each variant in sample.csv: `verdict` correct / incorrect / unsure (is it what the claimed "
           "change says, and nothing else?), `reviewer` your name, `note` optional. Then "
           "`cxr variants review --verdicts sample.csv`.", ""]
    current = None
    for r in rows:
        name = _stratum(r["kind"], r["error_category"])
        if name != current:
            out += [f"## {name}", ""]
            current = name
        out += [f"**{r['variant_id']}**: claimed change: {_cell(r['claimed_change']) or '(none stated)'}", "",
                "| original | variant |", "|---|---|", f"| {_cell(r['original'])} | {_cell(r['variant'])} |", ""]
    return "\n".join(out)


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    if not n:
        return None, None
    p = k / n
    mid, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(mid - half, 4), round(mid + half, 4)


def import_verdicts(sample_dir: str | Path, verdict_files: list[str | Path], out: str | Path) -> dict:
    sample_path = Path(sample_dir) / "sample.csv"
    if not sample_path.exists():
        raise FileNotFoundError(f"{sample_path} not found: run `cxr variants review` (export) first")
    sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False)
    stratum = {r.variant_id: _stratum(r.kind, r.error_category) for r in sample.itertuples()}
    votes: dict[str, dict[str, bool]] = defaultdict(dict)  # variant -> reviewer -> correct?
    invalid, unsure, blank = [], 0, 0
    for path in verdict_files:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"variant_id", "verdict"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; fill in the exported sample.csv")
        for line, r in enumerate(frame.to_dict("records"), start=2):
            reviewer = (r.get("reviewer") or "").strip() or Path(path).stem
            verdict = (r.get("verdict") or "").strip().lower()
            reason = None
            if r["variant_id"] not in stratum:
                reason = "unknown_variant_id"
            elif not verdict:
                blank += 1
                continue
            elif verdict not in VERDICTS:
                reason = f"invalid_verdict:{verdict[:20]}"
            elif reviewer in votes[r["variant_id"]]:
                reason = f"duplicate_verdict:{reviewer}"
            if reason:
                invalid.append({"file": str(path), "line": line, "variant_id": r["variant_id"], "reason": reason})
            elif VERDICTS[verdict] is None:
                unsure += 1
            else:
                votes[r["variant_id"]][reviewer] = VERDICTS[verdict]
    rows, agree = _quality(stratum, votes)
    with atomic_dir(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp / "quality.csv", index=False)
        pd.DataFrame(invalid, columns=["file", "line", "variant_id", "reason"]).to_csv(tmp / "invalid_verdicts.csv",
                                                                                      index=False)
        summary = {"strata": rows, "reviewers": agree, "invalid": len(invalid), "unsure": unsure,
                   "not_reviewed_rows": blank, "reviewed_variants": sum(1 for v in votes.values() if v)}
        write_json(tmp / "quality.json", summary)
    return summary


def _quality(stratum: dict[str, str], votes: dict[str, dict[str, bool]]) -> tuple[list[dict], dict]:
    majority = {}
    for vid, by in votes.items():
        yes = sum(by.values())
        if by and yes * 2 != len(by):  # a tie decides nothing
            majority[vid] = yes * 2 > len(by)
    rows = []
    for name in sorted(set(stratum.values())):
        ids = [v for v, s in stratum.items() if s == name]
        reviewed = [v for v in ids if v in majority]
        correct = sum(majority[v] for v in reviewed)
        multi = [v for v in ids if len(votes.get(v, {})) > 1]
        low, high = _wilson(correct, len(reviewed))
        rows.append({"stratum": name, "sampled": len(ids), "reviewed": len(reviewed), "correct": correct,
                     "quality": round(correct / len(reviewed), 4) if reviewed else None,
                     "wilson_low": low, "wilson_high": high,
                     "unanimous": round(sum(len(set(votes[v].values())) == 1 for v in multi) / len(multi), 4)
                     if multi else None})
    agree: dict[str, dict] = {}
    per = Counter()
    hits = Counter()
    for vid, by in votes.items():
        for reviewer, verdict in by.items():
            per[reviewer] += 1
            hits[reviewer] += vid in majority and majority[vid] == verdict
    for reviewer in sorted(per):
        agree[reviewer] = {"verdicts": per[reviewer], "agrees_with_majority": round(hits[reviewer] / per[reviewer], 4)}
    return rows, agree
