"""`cxr ingest merge`: the outputs of a partitioned ingest (one `cxr ingest --partition pNN` per files/pNN
folder) combined into the output one un-partitioned `cxr ingest` of the same input writes.

Studies are read in sorted study-id order and a subject lives in one pNN folder, so every decision ingest
makes (duplicates, splits, quarantine) is the same within a partition as in the whole: the merge
concatenates the tables, restores the single run's order, re-writes the image shards in that order and
recounts the summary. It refuses what would make the result differ: a partition missing, given twice or
made from another input, or a study id found in two partitions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from components.ingest.audit import account_traps, preview_grid
from components.ingest.readers import mimic
from components.ingest.readers._common import natural_key
from components.ingest.run import IMAGES_SCHEMA, STUDIES_SCHEMA, summarize, write_metrics
from components.ingest.shards import ShardWriter
from components.io import atomic_dir, stable, write_bytes_atomic, write_json, write_table
from components.params import IngestParams
from components.quarantine import SCHEMA as QUARANTINE
from components.quarantine import Quarantine

SAME_IN_EVERY_PART = ("source", "input", "image_root")


def _parts(folders: list[Path]) -> list[tuple[Path, dict]]:
    parts = []
    for folder in folders:
        file = folder / "summary.json"
        if not file.is_file():
            raise FileNotFoundError(f"{folder} holds no summary.json: not a finished `cxr ingest --partition` output")
        summary = json.loads(file.read_text())
        if not summary.get("partition"):
            raise ValueError(f"{folder} is not a partition's output (summary.json names no partition)")
        parts.append((folder, summary))
    parts.sort(key=lambda p: natural_key(p[1]["partition"]))
    first = parts[0][1]
    for folder, summary in parts:
        differs = [k for k in SAME_IN_EVERY_PART if summary.get(k) != first.get(k)]
        if differs:
            raise ValueError(f"{folder} was ingested from another {', '.join(differs)} than {parts[0][0]}")
    given = Counter(s["partition"] for _, s in parts)
    twice = sorted(k for k, n in given.items() if n > 1)
    expected = mimic.partitions(Path(first["input"]), Path(first["image_root"]) if first["image_root"] else None)
    missing = [k for k in expected if k not in given]
    if twice or missing or set(given) - set(expected):
        raise ValueError(f"partitions of {first['input']}: {', '.join(expected)}; given twice: {twice or 'none'}, "
                         f"missing: {missing or 'none'}, unknown: {sorted(set(given) - set(expected)) or 'none'}")
    return parts


def merge(cfg: IngestParams, folders: list[str | Path], out: str | Path | None = None, progress: bool = True) -> dict:
    """Merge partition outputs `folders` into `out` (default ingest.out); returns the summary."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise ValueError("no partition outputs given")
    out = Path(out or cfg.out)
    parts = _parts(folders)
    studies, images, quarantine = [], [], Quarantine("ingest")
    owner: dict[str, str] = {}
    for folder, summary in parts:
        part_studies = pq.read_table(folder / "studies.parquet").to_pylist()
        part_quarantine = pq.read_table(folder / "quarantine.parquet").to_pylist()
        for study_id in {r["study_id"] for r in part_studies} | {q["study_id"] for q in part_quarantine}:
            if owner.setdefault(study_id, summary["partition"]) != summary["partition"]:
                raise ValueError(f"study {study_id} is in partitions {owner[study_id]} and {summary['partition']}: "
                                 "ingest this input un-partitioned")
        studies += part_studies
        quarantine += part_quarantine
        images += [(folder, r) for r in pq.read_table(folder / "images.parquet").to_pylist()]
    # the single run's order: studies by id (stable), their images in study order, quarantine by study
    studies.sort(key=lambda r: natural_key(r["study_id"]))
    position = {r["study_id"]: i for i, r in enumerate(studies)}
    images.sort(key=lambda fr: position[fr[1]["study_id"]])
    quarantine.sort(key=lambda q: natural_key(q["study_id"]))

    first = parts[0][1]
    with atomic_dir(out, folders + [Path(first["input"])]) as tmp:
        shards = ShardWriter(tmp / "images", cfg.shard_size)
        image_rows = []
        for folder, row in images:
            pixels = np.load(folder / "images" / row["shard"], mmap_mode="r")[row["index"]]
            row["shard"], row["index"] = shards.add(np.array(pixels))
            image_rows.append(row)
        shards.flush()
        write_table(tmp / "studies.parquet", studies, STUDIES_SCHEMA)
        write_table(tmp / "images.parquet", image_rows, IMAGES_SCHEMA)
        write_table(tmp / "quarantine.parquet", quarantine, QUARANTINE)
        if image_rows:
            write_bytes_atomic(tmp / "preview.png", preview_grid(tmp, image_rows[:16]))
        summary = _summary(parts, studies, image_rows, quarantine)
        write_json(tmp / "summary.json", stable(summary))
    write_metrics(cfg.metrics, summary)
    return {**summary, "partitions": [s["partition"] for _, s in parts]}


def _summary(parts: list[tuple[Path, dict]], studies: list[dict], image_rows: list[dict], quarantine) -> dict:
    """The single run's summary: inputs summed over the partitions, everything else recounted."""
    summaries = [s for _, s in parts]
    records = {"in": sum(s["records"]["in"] for s in summaries),
               "in_studies": sum(s["records"]["in_studies"] for s in summaries),
               "lost": [r for s in summaries for r in s["records"]["lost"]][:20]}
    records_ok = all(not s["records"]["lost"] for s in summaries) and records["in"] == records["in_studies"]
    flagged = Counter()
    for s in summaries:
        flagged.update(s["flagged_kept"])
    summary = summarize(records, records_ok, sum(s["studies"]["in"] for s in summaries),
                        sum(s["images"]["in"] for s in summaries), studies, image_rows, quarantine, flagged)
    first = summaries[0]
    summary["references"] = {"files": first["references"]["files"], "studies": dict(sorted(Counter(
        r["reference_source"] for r in studies if r["reference_source"]).items()))}
    summary.update({k: first[k] for k in SAME_IN_EVERY_PART})
    truth = Path(first["input"]) / "truth.parquet"
    if first["source"] == "synth" and truth.exists():
        summary["traps"] = account_traps(truth, studies, quarantine)
    return summary
