"""`cxr clean`: ingested studies -> clean, labelled, PHI-free reports, validated by Great Expectations.

Per study: bad-input screening, normalisation, sections, abbreviations and style features, text PHI
(quarantine or redact), the DICOM audit carried from ingest, then the 14 CheXpert labels.
Outputs (atomically, in the stage folder):
    reports.parquet     one row per clean study
    quarantine.parquet  every dropped study with a reason code
    summary.json        counts, label prevalence, PHI rate, validation verdict, and the
                        labeler's agreement with the dataset's reference labels (agreement.py)
    gx/                 Great Expectations results.json
and, in its run folder _run/ (which DVC ignores: the HTML names the run time), data_docs/ with the GX Data Docs.
Rows in (ingested studies) = rows out + rows quarantined.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from components.chexpert import OBSERVATIONS, REFERENCE_COLUMNS
from components.io import atomic_dir, check_output, run_dir, stable, write_json, write_table
from components.parallel import WorkerCrashed, ordered_map
from components.params import CleanParams
from components.quarantine import SCHEMA as QUARANTINE
from components.quarantine import Quarantine

REPORTS_SCHEMA = pa.schema([
    ("study_id", pa.string()), ("subject_id", pa.string()), ("split", pa.string()), ("source", pa.string()),
    ("text", pa.string()), ("findings", pa.string()), ("impression", pa.string()),
    ("sections", pa.map_(pa.string(), pa.string())),
    ("impression_only", pa.bool_()), ("findings_only", pa.bool_()), ("numbered_impression", pa.bool_()),
    ("comparison", pa.bool_()), ("hedging", pa.int32()), ("n_chars", pa.int32()), ("n_words", pa.int32()),
    ("abbreviations", pa.list_(pa.string())), ("abbreviation_density", pa.float32()),
    ("ambiguous_abbreviations", pa.list_(pa.string())), ("deid_tokens", pa.int32()),
    ("phi_redacted", pa.int32()), ("phi_kinds", pa.list_(pa.string())), ("phi_spans", pa.int32()),
    ("dicom_must_strip", pa.list_(pa.string())),
    *[(o, pa.float32()) for o in OBSERVATIONS],
    ("laterality", pa.string()), ("severity", pa.string()),
    ("image_ids", pa.list_(pa.string())), ("views", pa.list_(pa.string())),
    ("split_source", pa.string()),  # source | assigned, from ingest
    ("reference_source", pa.string()), *[(c, pa.float32()) for c in REFERENCE_COLUMNS],
])
CARRIED = ("split_source", "reference_source", *REFERENCE_COLUMNS)  # from ingest, absent in older outputs


def _screen_text(report) -> tuple[str | None, str, str]:
    """(text, reason, detail): reason is '' when the report is usable as text at all."""
    if isinstance(report, bytes):
        try:
            report = report.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, "report_not_utf8", f"invalid byte at offset {e.start}"
    if report is None or not str(report).strip():
        return None, "report_empty", ""
    try:
        report.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates left by a lossy decode upstream
        return None, "report_not_utf8", f"undecodable character at offset {e.start}"
    from components.textcheck import text_problem

    problem = text_problem(report)
    if problem:
        return None, "report_not_text", problem
    return report, "", ""


def clean_study(study: dict, cfg: CleanParams) -> tuple[dict | None, str, str]:
    """One study -> (row, '', '') or (None, reason, detail). Runs in worker processes."""
    from components.privacy.phi import detect_phi, redact
    from components.reports.abbreviations import expand_abbreviations, find_abbreviations
    from components.reports.features import style_features
    from components.reports.labeler import label_report
    from components.reports.normalize import DEID_TOKEN, normalize_report
    from components.reports.sections import labelable_text, parse_sections

    raw, reason, detail = _screen_text(study["report"])
    if reason:
        return None, reason, detail
    if len(raw) > cfg.max_report_chars:
        return None, "report_too_long", f"{len(raw)} characters > clean.max_report_chars={cfg.max_report_chars}"
    text = normalize_report(raw)
    if not text.strip():
        return None, "report_empty", "nothing left after normalisation"

    spans = detect_phi(text, cfg.phi_kinds)
    kinds = sorted({s.kind for s in spans})
    if spans and cfg.phi_policy == "quarantine":
        counts = Counter(s.kind for s in spans)
        return None, "report_phi", ",".join(f"{k}={counts[k]}" for k in kinds)
    remaining = spans if cfg.phi_policy == "off" else []
    if spans and cfg.phi_policy == "redact":
        text = redact(text, spans, DEID_TOKEN)
        remaining = detect_phi(text, cfg.phi_kinds)  # verify, don't assume, that redaction left nothing

    attributes = study.get("dicom_identifying_attributes")  # a numpy array when read from Parquet
    must_strip = [] if attributes is None else list(attributes)
    if study.get("burned_in_annotation"):
        must_strip.append("BurnedInAnnotation")
    if must_strip and cfg.dicom_phi == "quarantine":
        reason = "burned_in_annotation" if study.get("burned_in_annotation") else "dicom_identifying_header"
        return None, reason, ",".join(must_strip)

    given = dict(study["sections"]) if study["sections"] is not None else {}
    parsed = parse_sections(text, given=given)
    result = label_report(labelable_text(parsed))
    hits = find_abbreviations(text)
    features = style_features(text, parsed, hits)
    stored = expand_abbreviations(text) if cfg.expand_abbreviations else text
    if stored != text:
        remaining = detect_phi(stored, cfg.phi_kinds)
    row = {
        "study_id": study["study_id"], "subject_id": study["subject_id"], "split": study["split"],
        "source": study["source"], "text": stored,
        "findings": parsed.sections.get("findings"), "impression": parsed.sections.get("impression"),
        "sections": parsed.sections, "impression_only": parsed.impression_only,
        "findings_only": parsed.findings_only, "numbered_impression": features["numbered_impression"],
        "comparison": features["comparison"], "hedging": features["hedging"], "n_chars": len(stored),
        "n_words": features["n_words"], "abbreviations": sorted({h.key for h in hits}),
        "abbreviation_density": features["abbreviation_density"],
        "ambiguous_abbreviations": features["ambiguous_abbreviations"], "deid_tokens": features["deid_tokens"],
        "phi_redacted": len(spans) if cfg.phi_policy == "redact" else 0, "phi_kinds": kinds,
        "phi_spans": len(remaining),
        "dicom_must_strip": must_strip,
        **result.labels,
        "laterality": json.dumps(result.laterality, sort_keys=True),
        "severity": json.dumps(result.severity, sort_keys=True),
        "image_ids": list(study["image_ids"]), "views": list(study["views"]),
        **{c: _none_if_nan(study.get(c)) for c in CARRIED},
    }
    return row, "", ""


def _none_if_nan(value):
    return None if value is None or (isinstance(value, float) and value != value) else value


REQUIRED_INPUT = ("study_id", "subject_id", "split", "source", "report", "sections", "image_ids", "views")


def read_studies(input_dir: str | Path) -> list[dict]:
    """The ingest stage's studies table; a missing file or column is one clear ValueError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = Path(input_dir) / "studies.parquet"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: run `cxr ingest` first (clean.input={input_dir})")
    try:
        columns = pq.read_schema(source).names
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{source} is not a readable Parquet table ({type(e).__name__})") from None
    missing = [c for c in REQUIRED_INPUT if c not in columns]
    if missing:
        raise ValueError(f"{source} lacks column(s) {', '.join(missing)}: is it an ingest output?")
    return pd.read_parquet(source).to_dict("records")


def clean(cfg: CleanParams, progress: bool = True) -> dict:
    from components.quality.suites import validate_reports
    from components.reports.agreement import reference_agreement

    start = time.perf_counter()
    check_output(cfg.out, [cfg.input])
    studies = read_studies(cfg.input)
    quarantine = Quarantine("clean")
    rows = []
    with ordered_map(partial(clean_study, cfg=cfg), studies, cfg.workers, max_chunk=64) as results:
        for study, result in tqdm(zip(studies, results), total=len(studies), desc="clean",
                                  unit="report", disable=not progress):
            if isinstance(result, WorkerCrashed):
                result = (None, "worker_crashed", result.detail)
            row, reason, detail = result
            if row is None:
                quarantine.add("study", study["study_id"], study["study_id"], reason, detail)
            else:
                rows.append(row)
    t_clean = time.perf_counter() - start

    with atomic_dir(cfg.out, [cfg.input]) as tmp:
        write_table(tmp / "reports.parquet", rows, REPORTS_SCHEMA)
        write_table(tmp / "quarantine.parquet", quarantine, QUARANTINE)
        table = pd.read_parquet(tmp / "reports.parquet")
        quality = validate_reports(table, cfg.quality, tmp / "gx", data_docs_dir(tmp))
        quality = {k: v for k, v in quality.items() if k not in ("results_path", "data_docs")}
        summary = _summary(studies, table, quarantine, quality)
        summary["phi"]["kinds_checked"] = list(cfg.phi_kinds)  # the blocking check re-reads these
        summary["reference_agreement"] = reference_agreement(table)
        summary["seconds"] = {"clean": round(t_clean, 3), "total": round(time.perf_counter() - start, 3)}
        summary["reports_per_second"] = round(len(studies) / max(t_clean, 1e-9), 1)
        summary["traps"] = _account_report_phi(Path(cfg.input), quarantine, table)
        write_json(tmp / "summary.json", stable(summary))
    write_json(cfg.metrics, _metrics(summary))
    return summary


def data_docs_dir(out: str | Path) -> Path:
    """Data Docs live in the output's run folder, which DVC does not hash (their pages name the run time)."""
    return run_dir(out) / "data_docs"


def _summary(studies: list[dict], table: pd.DataFrame, quarantine: Quarantine, quality: dict) -> dict:
    n_q, reasons = quarantine.counts("study")
    prevalence = {o: {"positive": int((table[o] == 1).sum()), "negative": int((table[o] == 0).sum()),
                      "uncertain": int((table[o] == -1).sum()), "blank": int(table[o].isna().sum())}
                  for o in OBSERVATIONS}
    styles = {"impression_only": int(table["impression_only"].sum()),
              "findings_only": int(table["findings_only"].sum()),
              "numbered_impression": int(table["numbered_impression"].sum()),
              "abbreviation_heavy": int((table["abbreviation_density"] >= 10).sum()),
              "hedged": int((table["hedging"] > 0).sum()), "comparison": int(table["comparison"].sum())}
    phi_reports = reasons.get("report_phi", 0) + int(((table["phi_redacted"] > 0) | (table["phi_spans"] > 0)).sum())
    return {
        "studies": {"in": len(studies), "out": len(table), "quarantined": n_q, "by_reason": reasons},
        "conservation_ok": len(studies) == len(table) + n_q,
        "styles": styles, "label_prevalence": prevalence,
        "phi": {"reports_with_phi": phi_reports, "rate": round(phi_reports / max(len(studies), 1), 4),
                "redacted_spans": int(table["phi_redacted"].sum()),
                "remaining_spans": int(table["phi_spans"].sum())},
        "quality": quality,
    }


def _metrics(summary: dict) -> dict:
    """Flat numbers for `dvc metrics show` / `dvc exp show`."""
    n = max(summary["studies"]["out"], 1)
    return {
        "studies_out": summary["studies"]["out"], "studies_quarantined": summary["studies"]["quarantined"],
        "phi_rate": summary["phi"]["rate"], "gx_success": summary["quality"]["success"],
        **({"traps_all_accounted": summary["traps"]["all_accounted"]} if summary["traps"] else {}),
        "positive_labels_per_report": round(sum(v["positive"] for v in summary["label_prevalence"].values()) / n, 4),
        # macro F1 against each reference label file the dataset shipped (per observation: summary.json)
        "reference_f1": {source: {k: v for k, v in {"macro": a["macro_f1"], "studies": a["studies"]}.items()
                                  if v is not None} for source, a in summary["reference_agreement"].items()},
    }


def _account_report_phi(ingest_dir: Path, quarantine: Quarantine, table: pd.DataFrame) -> dict | None:
    """Synthetic data: did every planted text-PHI trap that reached this stage get caught here?"""
    try:
        origin = Path(json.loads((ingest_dir / "summary.json").read_text())["input"])
    except (FileNotFoundError, KeyError, ValueError):
        return None
    truth_path = origin / "truth.parquet" if origin.is_absolute() else Path.cwd() / origin / "truth.parquet"
    if not truth_path.exists():
        return None
    truth = pd.read_parquet(truth_path, columns=["study_id", "trap"])
    planted = set(truth.loc[truth["trap"] == "report_phi", "study_id"].astype(str))
    quarantined = {q["study_id"] for q in quarantine if q["reason"] == "report_phi"}
    redacted = set(table.loc[table["phi_redacted"] > 0, "study_id"])
    reached = planted & (quarantined | set(table["study_id"]))
    caught = reached & (quarantined | redacted)
    clean_flagged = (quarantined | redacted) - planted
    return {"report_phi": {"planted": len(planted), "reached_clean": len(reached), "caught": len(caught)},
            "clean_reports_flagged": len(clean_flagged),
            "all_accounted": caught == reached and not clean_flagged}
