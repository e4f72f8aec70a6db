"""Checks on an ingest output: conservation, planted-trap accounting, and a preview grid."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from components.ingest.shards import load_image
from components.quarantine import recount


def conservation(ingest_dir: str | Path) -> dict:
    """Recount from the written tables (not from summary.json): in = out + quarantined, per level."""
    d = Path(ingest_dir)
    summary = json.loads((d / "summary.json").read_text())
    studies = pd.read_parquet(d / "studies.parquet", columns=["study_id", "subject_id", "split"])
    n_images = pq.ParquetFile(d / "images.parquet").metadata.num_rows
    result = {"studies": recount(summary["studies"]["in"], len(studies), d / "quarantine.parquet", "study"),
              "images": recount(summary["images"]["in"], n_images, d / "quarantine.parquet", "image")}
    per_subject = studies.groupby("subject_id")["split"].nunique()
    result["subjects_in_two_splits"] = int((per_subject > 1).sum())
    result["ok"] = all(result[k]["ok"] for k in ("studies", "images")) and not result["subjects_in_two_splits"]
    return result


def account_traps(truth_path: Path, study_rows: list[dict], quarantine: list[dict]) -> dict:
    """For every planted trap: where it ended, and whether that is where it should end."""
    truth = pd.read_parquet(truth_path, columns=["study_id", "trap", "trap_stage", "trap_reason"])
    truth["study_id"] = truth["study_id"].astype(str)
    reason_of = {q["study_id"]: q["reason"] for q in quarantine if q["level"] == "study"}
    kept = {r["study_id"] for r in study_rows}
    report: dict = {}
    for trap, group in truth.dropna(subset=["trap"]).groupby("trap"):
        stage, reason = group["trap_stage"].iloc[0], group["trap_reason"].iloc[0]  # written by the generator
        outcomes = Counter(reason_of.get(s, "kept" if s in kept else "absent") for s in group["study_id"])
        expected = outcomes["kept"] if stage != "ingest" else outcomes[reason]
        report[trap] = {"planted": len(group), "expected_stage": stage, "expected_reason": reason,
                        "as_expected": int(expected), "outcomes": dict(sorted(outcomes.items()))}
    clean = set(truth.loc[truth["trap"].isna(), "study_id"])
    unexpected = Counter(r for s, r in reason_of.items() if s in clean)
    return {"by_trap": report, "clean_studies_quarantined": dict(unexpected),
            "all_accounted": all(v["as_expected"] == v["planted"] for v in report.values()) and not unexpected}


def preview_grid(ingest_dir: Path, image_rows: list[dict], columns: int = 4, tile: int = 128) -> bytes:
    """PNG grid of the first ingested images (no text, so no identifiers are drawn)."""
    n = len(image_rows)
    rows = (n + columns - 1) // columns
    canvas = np.zeros((rows * tile, columns * tile), dtype=np.uint8)
    for i, row in enumerate(image_rows):
        img = Image.fromarray(np.asarray(load_image(ingest_dir, row["shard"], row["index"])))
        r, c = divmod(i, columns)
        canvas[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = np.asarray(img.resize((tile, tile)))
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return buf.getvalue()
