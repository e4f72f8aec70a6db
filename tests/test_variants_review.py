"""`cxr variants review`: a stratified sample of accepted variants for people to judge, and their
verdicts turned into an acceptance-quality table (real variants of the session's pipeline run)."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
from typer.testing import CliRunner

from components.cli import app

runner = CliRunner()


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _review(variants_dir, clean_dir, out, *args):
    result = runner.invoke(app, ["variants", "review", "--set", f"variants.out={variants_dir}",
                                 "--set", f"variants.input={clean_dir}", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_export_then_import_verdicts(variants_dir, clean_dir, tmp_path):
    before = _digest(variants_dir)
    out = tmp_path / "review"
    summary = _review(variants_dir, clean_dir, out, "--per-stratum", "3", "--seed", "1")
    sample = pd.read_csv(out / "sample.csv", dtype=str, keep_default_na=False)
    variants = pd.read_parquet(variants_dir / "variants.parquet")
    reports = pd.read_parquet(clean_dir / "reports.parquet")
    accepted = variants[variants["valid"]].set_index("variant_id")
    # only accepted variants, at most 3 per kind / category, every stratum with accepted variants present
    assert set(sample["variant_id"]) <= set(accepted.index) and sample["variant_id"].is_unique
    strata = sample.apply(lambda r: f"error:{r.error_category}" if r.error_category else r.kind, axis=1)
    assert strata.value_counts().max() <= 3
    assert set(strata) == set(summary["strata"]) and len(summary["strata"]) >= 8
    row = sample.iloc[0]
    study = accepted.loc[row["variant_id"], "study_id"]
    assert row["original"] == reports.set_index("study_id").loc[study, "text"]
    assert row["variant"] == accepted.loc[row["variant_id"], "text"]
    assert row["claimed_change"] == (accepted.loc[row["variant_id"], "detail"] or "")
    md = (out / "sample.md").read_text()
    assert all(f"## {s}" in md for s in set(strata)) and "| original | variant |" in md
    # seeded: the same command gives the same sample; the variants output is never touched
    first = (out / "sample.csv").read_bytes()
    _review(variants_dir, clean_dir, out, "--per-stratum", "3", "--seed", "1")
    assert (out / "sample.csv").read_bytes() == first and _digest(variants_dir) == before

    # two reviewers: A rejects every error variant of one category, B agrees except on one variant
    errors = sample[sample["error_category"] != ""]
    bad_cat = errors["error_category"].iloc[0]
    a = sample.assign(reviewer="ann", verdict=["incorrect" if c == bad_cat else "correct" for c in sample["error_category"]])
    b = a.assign(reviewer="bob")
    flip = b.index[b["error_category"] == ""][0]
    b.loc[flip, "verdict"] = "incorrect"
    b = pd.concat([b, pd.DataFrame([{**b.iloc[0].to_dict(), "variant_id": "nope", "verdict": "correct"},
                                    {**b.iloc[1].to_dict(), "verdict": "maybe", "reviewer": "cy"}])])
    a.to_csv(tmp_path / "ann.csv", index=False)
    b.to_csv(tmp_path / "bob.csv", index=False)
    quality = _review(variants_dir, clean_dir, out, "--verdicts", str(tmp_path / "ann.csv"),
                      "--verdicts", str(tmp_path / "bob.csv"))
    table = pd.read_csv(out / "quality" / "quality.csv").set_index("stratum")
    assert table.loc[f"error:{bad_cat}", "quality"] == 0.0 and table.loc[f"error:{bad_cat}", "wilson_high"] < 1
    flipped = strata[flip]
    # ann says correct, bob incorrect on one variant: a tie, so that variant is not counted as reviewed
    assert table.loc[flipped, "reviewed"] == table.loc[flipped, "sampled"] - 1
    assert table.loc[flipped, "unanimous"] < 1
    others = [s for s in table.index if s not in (f"error:{bad_cat}", flipped)]
    assert all(table.loc[s, "quality"] == 1.0 and table.loc[s, "unanimous"] == 1.0 for s in others)
    invalid = pd.read_csv(out / "quality" / "invalid_verdicts.csv")
    assert sorted(invalid["reason"]) == ["invalid_verdict:maybe", "unknown_variant_id"]
    assert quality["invalid"] == 2 and set(quality["reviewers"]) == {"ann", "bob"}
    assert (out / "sample.csv").read_bytes() == first  # importing leaves the sample alone


def test_review_needs_the_variants_first(tmp_path):
    result = runner.invoke(app, ["variants", "review", "--set", f"variants.out={tmp_path / 'none'}",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "run `cxr variants` first" in result.output


def test_the_stage_still_runs_without_a_subcommand(tmp_path):
    # `cxr variants` is a group now (for `review`); without a subcommand it runs the stage, as DVC calls it
    result = runner.invoke(app, ["variants", "--set", f"variants.input={tmp_path / 'none'}", "--out", str(tmp_path / "v")])
    assert result.exit_code == 2 and "run `cxr clean` first" in result.output
