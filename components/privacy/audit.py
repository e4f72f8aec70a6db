"""`cxr audit-phi`: is any PHI that `cxr synth` planted present in an artifact downstream of clean?

The synth truth table lists every planted value (report PHI per study, and the DICOM header values
of the header-PHI trap). Each is searched, as an exact token, in every file under the audited paths:
Parquet tables through their decoded text columns (compressed pages hide raw bytes), everything
else (JSON, logs, HTML Data Docs, SQLite event storage, model files) as bytes. The report lists
file, kind and study id of each hit, never the value itself.

Ingest outputs hold the raw reports by design and are not audited (they stay on the machine).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from components.io import RUN_DIR, write_json
from components.params import AuditParams

# A bare clock time ("10:15") also appears in every log timestamp: searched in tables only.
_TABLE_ONLY_KINDS = {"time"}
_CHUNK = 64 << 20


def planted(truth_path: str | Path) -> list[dict]:
    """[{study_id, kind, value}] of every PHI value synth planted (report and DICOM header traps)."""
    import pandas as pd

    from components.synth.dicom import IDENTIFYING_VALUES

    path = Path(truth_path)
    if not path.is_file():
        raise FileNotFoundError(f"synth truth table {path} not found: the PHI audit needs the data that "
                                "`cxr synth` planted (audit.truth)")
    truth = pd.read_parquet(path, columns=["study_id", "trap", "planted_phi"])
    needles = []
    for row in truth.itertuples():
        for item in json.loads(row.planted_phi or "[]"):
            needles.append({"study_id": str(row.study_id), "kind": item["kind"], "value": item["value"]})
        if row.trap == "dicom_header_phi":
            for keyword, value in IDENTIFYING_VALUES.items():
                needles.append({"study_id": str(row.study_id), "kind": f"dicom:{keyword}", "value": value})
    return needles


def _pattern(value: str) -> re.Pattern:
    """The value as a whole token: "Chen" must not match inside "Chenoweth", nor 4829103 in 14829103."""
    return re.compile(rb"(?<![A-Za-z0-9])" + re.escape(value.encode()) + rb"(?![A-Za-z0-9])")


def _table_text(path: Path) -> bytes:
    """Every string in a Parquet table (nested lists and maps included), as one searchable blob."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    parts = []
    for column in table.columns:
        parts.append(json.dumps(column.to_pylist(), ensure_ascii=False, default=str))
    return "\n".join(parts).encode("utf-8", "surrogateescape")


def _blobs(path: Path):
    """The file's searchable content in overlapping chunks (big model files are not read whole)."""
    if path.suffix == ".parquet":
        yield _table_text(path)
        return
    with open(path, "rb") as f:
        tail = b""
        while chunk := f.read(_CHUNK):
            yield tail + chunk
            tail = chunk[-256:]


def _files_under(roots: list[Path], skip: Path) -> list[Path]:
    files = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return [f for f in dict.fromkeys(files) if f.resolve() != skip]


def files_to_audit(cfg: AuditParams) -> tuple[list[Path], list[Path]]:
    """(the pipeline's files under audit.paths, the tool state's files under $DAGSTER_HOME)."""
    out = Path(cfg.out).resolve()
    pipeline = _files_under([Path(p) for p in cfg.paths], out)
    home = os.environ.get("DAGSTER_HOME") if cfg.dagster_home else None
    seen = set(pipeline)
    return pipeline, [f for f in _files_under([Path(home)] if home else [], out) if f not in seen]


def audit(cfg: AuditParams) -> dict:
    needles = [n for n in planted(cfg.truth) if n["value"]]
    # One search per distinct (value, table-only) pair, however many studies it was planted in (every
    # header-PHI study carries the same DICOM values); a plain substring test (memmem, fast) before
    # the whole-token regex, which is slow to scan with since it starts with a lookbehind.
    searches: dict[tuple[bytes, bool], list[dict]] = {}
    for n in needles:
        searches.setdefault((n["value"].encode(), n["kind"] in _TABLE_ONLY_KINDS), []).append(n)
    patterns = {value: _pattern(value.decode()) for value, _ in searches}
    pipeline_files, tool_state_files = files_to_audit(cfg)
    files = pipeline_files + tool_state_files
    leaks, scanned_bytes = [], 0
    for path in files:
        hit = set()
        table = path.suffix == ".parquet"
        try:
            for blob in _blobs(path):
                scanned_bytes += len(blob)
                for key in searches.keys() - hit:
                    value, table_only = key
                    if (table or not table_only) and value in blob and patterns[value].search(blob):
                        hit.add(key)
        except OSError as e:
            raise ValueError(f"cannot read {path} for the PHI audit ({type(e).__name__})") from None
        found = sorted((n["study_id"], n["kind"]) for key in hit for n in searches[key])
        leaks += [{"file": str(path), "kind": kind, "study_id": study} for study, kind in found]
    summary = {
        "planted_values": len(needles), "studies_with_phi": len({n["study_id"] for n in needles}),
        "files_scanned": len(files), "tool_state_files_scanned": len(tool_state_files),
        "bytes_scanned": scanned_bytes,
        "paths": [str(p) for p in cfg.paths] + (["$DAGSTER_HOME"] if cfg.dagster_home else []),
        "table_only_kinds": sorted(_TABLE_ONLY_KINDS), "leaks": leaks, "passed": not leaks,
    }
    write_json(cfg.out, summary)
    # The metric counts only files DVC tracks: $DAGSTER_HOME and the run folders hold whatever earlier
    # runs and the UI left there (this audit's own run log among them), so counting them would change
    # the metric with no change in the data. They are searched all the same.
    tracked = [f for f in pipeline_files if RUN_DIR not in f.parts]
    write_json(cfg.metrics, {"phi_leaks": len(leaks), "pipeline_files_scanned": len(tracked),
                             "planted_values": len(needles)})
    return summary
