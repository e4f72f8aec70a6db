"""Great Expectations (GX Core 1.x) validation of the cleaned-reports table.

One suite, `clean_reports`, runs on one batch: the cleaned table plus a few derived 0/1 indicator
columns. GX 1.x has no "share of rows with value v" expectation, but the mean of a 0/1 indicator
*is* that share, and `ExpectColumnMeanToBeBetween` reports it as `observed_value` (so results.json
and Data Docs show e.g. "train share 0.80, expected 0.6..0.95"). That keeps split proportions,
section coverage and the duplicate-text rate in the same suite, batch and report as the row checks.

Splits: proportions are expected only of the splits this pipeline assigned (split_source
"assigned"; the indicator is NaN, which the mean skips, on rows with an official split), because an
official split is the dataset's choice (MIMIC-CXR's validate and test are each under 2% of studies).
Every split, official or not, is checked for patient leakage: each subject in exactly one split.

PHI: no expectation looks at raw report text values, because GX copies offending values into
results and Data Docs (`partial_unexpected_list`); text is judged through `n_chars` and the
derived indicators only.

great_expectations takes seconds to import, so it is imported inside `validate_reports` only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from components.chexpert import LABEL_VALUES, OBSERVATIONS
from components.io import atomic_dir, write_json
from components.params import QualityParams

SUITE_NAME = "clean_reports"
SPLITS = ("train", "val", "test")
ID_COLUMNS = ("study_id", "subject_id")
REQUIRED_COLUMNS = (
    *ID_COLUMNS, "split", "text", "findings", "impression", "n_chars",
    "impression_only", "findings_only", "phi_spans", *OBSERVATIONS,
)


def _present(s: pd.Series) -> pd.Series:
    """True where a section string is non-null and not blank."""
    return s.notna() & s.fillna("").astype(str).str.strip().ne("")


def with_indicators(df: pd.DataFrame, cfg: QualityParams) -> pd.DataFrame:
    """Copy of `df` with the derived 0/1 columns that the share expectations average over.

    A missing source column leaves its indicator out: the expectation on it then fails with a
    "column not found" error instead of this function crashing.
    """
    out = df.copy()
    if "split" in df:
        assigned = _assigned(df)
        for name in cfg.split_bounds:
            out[f"is_split_{name}"] = df["split"].eq(name).fillna(False).astype(float).where(assigned)
        if "subject_id" in df:
            # Valid split names only: an invalid one is the value-set expectation's to report.
            valid = df["split"].where(df["split"].isin(SPLITS))
            out["subject_splits"] = valid.groupby(df["subject_id"]).transform("nunique").astype(float)
    if "findings" in df and "impression" in df:
        out["has_section"] = (_present(df["findings"]) | _present(df["impression"])).astype(float)
    if "text" in df:
        out["is_duplicate_text"] = df["text"].duplicated(keep=False).astype(float)
    return out


def _assigned(df: pd.DataFrame) -> pd.Series:
    """Rows whose split the pipeline assigned (all rows of a table from before split_source existed)."""
    if "split_source" not in df:
        return pd.Series(True, index=df.index)
    return df["split_source"].fillna("assigned").eq("assigned")


def build_expectations(cfg: QualityParams, split_proportions: bool = True) -> list:
    """The `clean_reports` expectations, each with a description that reads well in Data Docs.

    split_proportions: whether any row's split was assigned here (else no proportion is expected).
    """
    import great_expectations.expectations as gxe

    exps = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="table is not empty"),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(REQUIRED_COLUMNS), exact_match=False,
            description="all required columns present (extra columns allowed)",
        ),
        gxe.ExpectColumnValuesToBeUnique(column="study_id", description="one row per study"),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{c} is set")
          for c in (*ID_COLUMNS, "split", "text", "phi_spans")),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_chars", min_value=cfg.min_chars, max_value=cfg.max_chars,
            description=f"report text has {cfg.min_chars}..{cfg.max_chars} characters",
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column="has_section", min_value=cfg.min_section_coverage, max_value=1.0,
            description=f"share of rows with findings or impression >= {cfg.min_section_coverage}",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), description="split is train, val or test",
        ),
        *(gxe.ExpectColumnMeanToBeBetween(
            column=f"is_split_{name}", min_value=lo, max_value=hi,
            description=f"share of {name} among rows split by the pipeline in [{lo}, {hi}]",
          ) for name, (lo, hi) in (cfg.split_bounds.items() if split_proportions else ())),
        gxe.ExpectColumnValuesToBeBetween(
            column="subject_splits", min_value=0, max_value=1,
            description="no patient leakage: every subject's studies are in one split",
        ),
        # Rows that still carry PHI after de-identification must have been quarantined upstream.
        gxe.ExpectColumnValuesToBeBetween(
            column="phi_spans", min_value=0, max_value=0, description="no PHI span left in text",
        ),
        gxe.ExpectColumnMeanToBeBetween(
            column="is_duplicate_text", min_value=0.0, max_value=cfg.max_duplicate_text_rate,
            description=f"share of rows with duplicated text <= {cfg.max_duplicate_text_rate}",
        ),
    ]
    # NaN (blank, not mentioned) is skipped by GX's map expectations, as CheXpert intends.
    exps += [
        gxe.ExpectColumnValuesToBeInSet(
            column=c, value_set=list(LABEL_VALUES), description=f"{c} label in {{1, 0, -1}} or blank",
        )
        for c in OBSERVATIONS
    ]
    return exps


def expectation_name(exp_type: str, kwargs: dict) -> str:
    """Stable name used in the summary's `failed` list, e.g. expect_column_values_to_be_unique(study_id)."""
    return f"{exp_type}({kwargs['column']})" if "column" in kwargs else exp_type


def _result_record(r) -> dict:
    """One expectation's outcome as plain JSON (GX's own to_json_dict makes numpy values safe)."""
    d = r.to_json_dict()
    cfg = d["expectation_config"]
    kwargs = {k: v for k, v in cfg["kwargs"].items() if k != "batch_id"}
    res = d.get("result") or {}
    rec = {
        "name": expectation_name(cfg["type"], kwargs),
        "expectation_type": cfg["type"],
        "column": kwargs.get("column"),
        "description": cfg.get("description"),
        "kwargs": kwargs,
        "success": d["success"],
        "observed_value": res.get("observed_value"),
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_percent": res.get("unexpected_percent"),
        "partial_unexpected_list": res.get("partial_unexpected_list"),
    }
    exc = d.get("exception_info") or {}
    # exception_info is either {raised_exception, exception_message} or keyed by metric id.
    infos = [exc] if "raised_exception" in exc else list(exc.values())
    messages = [i.get("exception_message") for i in infos if i.get("raised_exception")]
    if messages:
        rec["exception"] = "; ".join(m for m in messages if m)
    return rec


def validate_reports(df: pd.DataFrame, cfg: QualityParams, out_dir: Path, docs_dir: Path | None = None) -> dict:
    """Run the `clean_reports` suite on `df`; write results.json into `out_dir` and Data Docs into
    `docs_dir` (default `out_dir/data_docs`).

    Returns {"success", "evaluated", "failed": [names], "results_path", "data_docs": index.html}.
    """
    # No usage statistics: 1.24 ships no analytics client, but earlier 1.x releases read this
    # variable at import time, so set it before importing and also pin analytics_enabled=False.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig,
    )

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = Path(docs_dir).resolve() if docs_dir else out_dir / "data_docs"

    # Ephemeral context with in-memory stores: nothing in $HOME, nothing under the repo but out_dir.
    ctx = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    ))
    batch_def = (ctx.data_sources.add_pandas("cxr")
                 .add_dataframe_asset("clean_reports")
                 .add_batch_definition_whole_dataframe("all_rows"))
    assigned = bool(_assigned(df).any()) if len(df) else True
    suite = ctx.suites.add(gx.ExpectationSuite(name=SUITE_NAME, expectations=build_expectations(cfg, assigned)))
    vdef = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch_def, suite=suite))

    with atomic_dir(docs_dir) as tmp_docs:  # a half-built site never replaces the previous one
        ctx.add_data_docs_site("local_site", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(tmp_docs)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        # The checkpoint stores the result and renders it into the site (UpdateDataDocsAction).
        checkpoint = ctx.checkpoints.add(gx.Checkpoint(
            name=SUITE_NAME, validation_definitions=[vdef], result_format="SUMMARY",
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        ))
        run = checkpoint.run(batch_parameters={"dataframe": with_indicators(df, cfg)})
    vres = next(iter(run.run_results.values()))

    # GX returns results grouped by how they were computed; report them in suite order.
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    results = sorted(vres.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    records = [_result_record(r) for r in results]
    failed = [r["name"] for r in records if not r["success"]]
    results_path = out_dir / "results.json"
    write_json(results_path, {
        "suite": SUITE_NAME,
        "success": bool(vres.success),
        "statistics": vres.statistics,
        "n_rows": int(len(df)),
        "great_expectations_version": gx.__version__,
        "results": records,
    })
    return {
        "success": bool(vres.success),
        "evaluated": int(vres.statistics["evaluated_expectations"]),
        "failed": failed,
        "results_path": str(results_path),
        "data_docs": str(docs_dir / "index.html"),
    }
