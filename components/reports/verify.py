"""Checks on a clean-stage output, recomputed from the written files (the Dagster checks call these)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from components.quarantine import recount


def phi_free(clean_dir: str | Path) -> dict:
    """Run the PHI detector again over every stored text: passing needs zero spans."""
    from components.privacy.phi import detect_phi

    table = pd.read_parquet(Path(clean_dir) / "reports.parquet", columns=["study_id", "text", "dicom_must_strip"])
    kinds: Counter = Counter()
    flagged = 0
    for text in table["text"]:
        spans = detect_phi(text)
        flagged += bool(spans)
        kinds.update(s.kind for s in spans)
    return {"passed": flagged == 0, "reports": len(table), "reports_with_phi": flagged,
            "kinds": dict(sorted(kinds.items())),
            "dicom_must_strip": int(table["dicom_must_strip"].map(len).gt(0).sum())}


def conservation(clean_dir: str | Path, ingest_dir: str | Path) -> dict:
    """Studies ingested = reports written + studies quarantined by this stage."""
    n_in = pq.ParquetFile(Path(ingest_dir) / "studies.parquet").metadata.num_rows
    n_out = pq.ParquetFile(Path(clean_dir) / "reports.parquet").metadata.num_rows
    return recount(n_in, n_out, Path(clean_dir) / "quarantine.parquet", "study")


def quality(clean_dir: str | Path) -> dict:
    """The Great Expectations verdict the stage saved: success, evaluated count, failed expectations."""
    results = json.loads((Path(clean_dir) / "gx" / "results.json").read_text())
    failed = [r["name"] for r in results["results"] if not r["success"]]
    return {"success": bool(results["success"]), "evaluated": len(results["results"]), "failed": failed}
