"""`cxr ingest`: any supported source -> studies table, image shards, quarantine, summary.

Outputs (written atomically into the stage's folder):
    studies.parquet     one row per usable study (report, sections, images, split, audit fields)
    images.parquet      index of every stored image: shard file and position
    images/shard-*.npy  uint8 (N, R, R) arrays
    quarantine.parquet  every dropped study or image with a reason code
    summary.json        counts per outcome and reason, timings, trap accounting for synth
    preview.png         a grid of ingested images, for people and the Dagster UI
Rows in = rows out + rows quarantined, for studies and for images. With ingest.require_images false a
study whose images are all unusable (or absent: a text-only corpus) is kept with an empty image list;
its images are still each quarantined with their reason.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from functools import partial
from itertools import islice
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from components.ingest.audit import account_traps, preview_grid
from components.ingest.decode import DecodeConfig, DecodeError, decode
from components.ingest.readers import read_source
from components.ingest.readers._common import census, escapes_root, id_problem, natural_key
from components.ingest.records import RawStudy
from components.ingest.references import COLUMNS as REFERENCE_COLUMNS
from components.ingest.references import load_references, reference_columns
from components.ingest.shards import ShardWriter
from components.ingest.split import SPLITS, assign_splits
from components.io import atomic_dir, check_output, stable, write_bytes_atomic, write_json, write_table
from components.parallel import WorkerCrashed, ordered_map
from components.quarantine import SCHEMA as QUARANTINE
from components.quarantine import Quarantine
from components.params import IngestParams
from components.textcheck import text_problem

STUDIES_SCHEMA = pa.schema([
    ("study_id", pa.string()), ("subject_id", pa.string()), ("split", pa.string()), ("source", pa.string()),
    ("report", pa.string()), ("sections", pa.map_(pa.string(), pa.string())),
    ("image_ids", pa.list_(pa.string())), ("views", pa.list_(pa.string())),
    ("dicom_identifying_attributes", pa.list_(pa.string())), ("burned_in_annotation", pa.bool_()),
    ("private_tags", pa.int32()), ("meta", pa.string()),
    # "source": the dataset's official split; "assigned": hashed here (only these are held to proportions)
    ("split_source", pa.string()),
    # reference labels shipped with the dataset (components/ingest/references.py), NaN = blank
    ("reference_source", pa.string()), *[(c, pa.float32()) for c in REFERENCE_COLUMNS],
])
IMAGES_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("study_id", pa.string()), ("subject_id", pa.string()), ("split", pa.string()),
    ("view", pa.string()), ("shard", pa.string()), ("index", pa.int32()), ("pixel_hash", pa.string()),
])


def _decode_task(task: tuple, cfg: DecodeConfig):
    """Worker entry point: never raises, so one bad file cannot stop the stage."""
    path, view, subject = task
    try:
        return decode(path, cfg, view_hint=view, subject_id=subject)
    except DecodeError as e:
        return e
    except Exception as e:  # noqa: BLE001 - any undecodable file is quarantined, not fatal
        return DecodeError("image_unreadable", f"{Path(path).name}: {type(e).__name__}")


def _screen(studies: list[RawStudy], quarantine: Quarantine, cfg: IngestParams, roots: list[Path]) -> list[RawStudy]:
    """Study-level checks that need no pixels; images unusable as listed are quarantined here."""
    seen: set[str] = set()
    usable = []
    for s in studies:
        reason, detail = s.error, s.error_detail
        where = f" ({s.records[0]})" if s.records else ""
        screened = False
        if reason is None:
            bad_id = next(((k, p) for k, v in (("study_id", s.study_id), ("subject_id", s.subject_id))
                           if (p := id_problem(v))), None)
            if bad_id:
                reason, detail = "source_record_invalid", f"{bad_id[0]}: {bad_id[1]}{where}"
            elif s.study_id in seen:
                reason, detail = "duplicate_record", "study id listed more than once"
            elif s.report is None:
                reason = "report_missing"
            elif not s.report.strip():
                reason = "report_empty"
            elif len(s.report.encode("utf-8", "surrogateescape")) > cfg.max_report_bytes:
                reason, detail = "report_too_large", f"> ingest.max_report_bytes={cfg.max_report_bytes}{where}"
            elif problem := text_problem(s.report):
                reason, detail = "report_not_text", problem + where
            elif not s.images and cfg.require_images:
                reason = "image_missing"
            else:
                screened = True
                if s.images and not _screen_images(s, quarantine, roots) and cfg.require_images:
                    reason, detail = "image_missing", "every listed image was quarantined"
        seen.add(s.study_id)
        if reason:
            quarantine.add("study", s.study_id, s.study_id, reason, detail)
            for img in _listed(s) if screened else s.images:
                quarantine.add("image", img.image_id, s.study_id, "study_quarantined", reason)
        else:
            usable.append(s)
    return usable


def _screen_images(s: RawStudy, quarantine: Quarantine, roots: list[Path]) -> int:
    """Quarantine listed images that must not be opened (repeated rows, files outside the dataset);
    returns how many are left to decode."""
    for img in s.images:
        if img.error is None and any(escapes_root(img.path, r) for r in roots):
            img.error, img.detail = "outside_dataset_root", f"{Path(img.path).name} resolves outside the dataset root"
        if img.error:
            quarantine.add("image", img.image_id, s.study_id, img.error, img.detail)
    return len(_listed(s))


def _listed(s: RawStudy) -> list:
    """The study's images that were not quarantined as listed (those are already accounted for)."""
    return [img for img in s.images if img.error is None]


def ingest(cfg: IngestParams, source: str | None = None, input_path: str | Path | None = None,
           out: str | Path | None = None, workers: int | None = None, progress: bool = True) -> dict:
    source, input_path = source or cfg.source, Path(input_path or cfg.input)
    out, workers = Path(out or cfg.out), workers or cfg.workers
    image_root = Path(cfg.image_root) if cfg.image_root else None
    t0 = time.perf_counter()
    with census(input_path, cfg.max_report_bytes) as raw:
        studies = list(read_source(source, input_path, image_root, cfg.partition))
    check_output(out, [input_path] + ([image_root] if image_root else []))  # before any decoding
    if not studies:
        raise ValueError(f"no studies found under {input_path} for source {source!r}")
    references, reference_files = load_references(
        cfg.reference_labels, [input_path] + ([image_root] if image_root else []), {s.study_id for s in studies})
    t_read = time.perf_counter()
    quarantine = Quarantine("ingest")
    usable = _screen(studies, quarantine, cfg, [raw.root_dir])
    dcfg = DecodeConfig(cfg.resolution, tuple(cfg.percentiles), cfg.frontal_only, cfg.unknown_view,
                        cfg.max_image_pixels, cfg.max_image_bytes)
    tasks = [(img.path, img.view, s.subject_id) for s in usable for img in _listed(s)]

    study_rows, image_rows, dup_seen = [], [], {}
    flagged = Counter()
    with atomic_dir(out, [input_path] + ([image_root] if image_root else [])) as tmp:
        shards = ShardWriter(tmp / "images", cfg.shard_size)
        with ordered_map(partial(_decode_task, cfg=dcfg), tasks, workers) as decoded_all:
            results = iter(tqdm(decoded_all, total=len(tasks), desc="ingest", unit="img", disable=not progress))
            for s in usable:
                decoded = list(islice(results, len(_listed(s))))
                kept = _keep_images(s, decoded, cfg.dicom_phi, quarantine, flagged, cfg.require_images)
                if kept is None:
                    continue
                key = (s.subject_id, hashlib.blake2b(s.report.encode(), digest_size=16).hexdigest(),
                       tuple(sorted(d.pixel_hash for _, d in kept)))
                if key in dup_seen:
                    _drop_study(s, kept, "duplicate_study", f"same as study {dup_seen[key]}", quarantine)
                    continue
                dup_seen[key] = s.study_id
                for img, d in kept:
                    shard, index = shards.add(d.pixels)
                    image_rows.append({"image_id": img.image_id, "study_id": s.study_id,
                                       "subject_id": s.subject_id, "view": d.view, "shard": shard,
                                       "index": index, "pixel_hash": d.pixel_hash})
                study_rows.append(_study_row(s, kept, source) | reference_columns(references.get(s.study_id)))
            shards.flush()
        t_decode = time.perf_counter()

        # Over kept studies only: a dropped study's subject may have no kept study at all.
        splits = assign_splits({r["study_id"]: r["subject_id"] for r in study_rows},
                               {s.study_id: s.split for s in usable}, cfg.split, cfg.split_seed)
        for row in study_rows + image_rows:
            row["split"] = splits[row["study_id"]][0]
        for row in study_rows:
            row["split_source"] = splits[row["study_id"]][1]
        write_table(tmp / "studies.parquet", study_rows, STUDIES_SCHEMA)
        write_table(tmp / "images.parquet", image_rows, IMAGES_SCHEMA)
        # by study, in reading order: the order a merge of partitions reproduces (components/ingest/merge.py)
        quarantine.sort(key=lambda q: natural_key(q["study_id"]))
        write_table(tmp / "quarantine.parquet", quarantine, QUARANTINE)
        if image_rows:
            write_bytes_atomic(tmp / "preview.png", preview_grid(tmp, image_rows[:16]))
        accounted = {r for s in studies for r in s.records}
        lost = [r for r in raw.records if r not in accounted]  # a record the reader consumed but lost
        records = {"in": len(raw.records), "in_studies": len(accounted & set(raw.records)), "lost": lost[:20]}
        summary = summarize(records, not lost and len(raw.records) == len(set(raw.records)), len(studies),
                            sum(len(s.images) for s in studies), study_rows, image_rows, quarantine, flagged)
        summary["references"] = {"files": reference_files, "studies": dict(sorted(Counter(
            r["reference_source"] for r in study_rows if r["reference_source"]).items()))}
        summary.update(source=source, input=str(input_path), image_root=cfg.image_root, images_per_second=round(
            len(tasks) / max(t_decode - t_read, 1e-9), 1), seconds={
            "read": round(t_read - t0, 3), "decode": round(t_decode - t_read, 3),
            "total": round(time.perf_counter() - t0, 3)}, workers=workers)
        if cfg.partition:
            summary["partition"] = cfg.partition
        truth = input_path / "truth.parquet"
        if source == "synth" and truth.exists() and not cfg.partition:  # traps span partitions: merge counts them
            summary["traps"] = account_traps(truth, study_rows, quarantine)
        write_json(tmp / "summary.json", stable(summary))
    write_metrics(cfg.metrics, summary)
    return summary


def write_metrics(path, summary: dict) -> None:
    write_json(path, {
        "studies_out": summary["studies"]["out"], "studies_quarantined": summary["studies"]["quarantined"],
        "images_out": summary["images"]["out"], "images_quarantined": summary["images"]["quarantined"],
        "conservation_ok": summary["conservation_ok"],
        **({"traps_all_accounted": summary["traps"]["all_accounted"]} if "traps" in summary else {})})


def _keep_images(s: RawStudy, decoded: list, dicom_phi: str, quarantine: Quarantine,
                 flagged: Counter, require_images: bool = True) -> list | None:
    """Images of the study that can be used; None (the study quarantined) when none can and images
    are required, else possibly [] (the study kept for its text)."""
    kept, failure = [], None
    for img, d in zip(_listed(s), decoded):
        if isinstance(d, WorkerCrashed):
            d = DecodeError("worker_crashed", f"{Path(img.path).name}: {d.detail}")
        if isinstance(d, DecodeError):
            quarantine.add("image", img.image_id, s.study_id, d.reason, d.detail)
            if d.reason not in ("view_not_frontal", "view_unknown") and failure is None:
                failure = d
            continue
        problem = _header_problem(d.header)
        if problem and dicom_phi == "quarantine":
            detail = ",".join(d.header["identifying"]) or "BurnedInAnnotation=YES"
            quarantine.add("image", img.image_id, s.study_id, problem, detail)
            failure = failure or DecodeError(problem, detail)
            continue
        if problem:
            flagged[problem] += 1
        kept.append((img, d))
    if not kept and require_images:
        reason, detail = (failure.reason, failure.detail) if failure else ("no_frontal_image", "")
        quarantine.add("study", s.study_id, s.study_id, reason, detail)
        return None
    return kept


def _header_problem(header: dict) -> str | None:
    if header.get("burned_in_annotation") == "YES":
        return "burned_in_annotation"
    if header.get("identifying"):
        return "dicom_identifying_header"
    return None


def _drop_study(s: RawStudy, kept: list, reason: str, detail: str, quarantine: Quarantine) -> None:
    quarantine.add("study", s.study_id, s.study_id, reason, detail)
    for img, _ in kept:
        quarantine.add("image", img.image_id, s.study_id, "study_quarantined", reason)


def _study_row(s: RawStudy, kept: list, source: str) -> dict:
    headers = [d.header for _, d in kept]
    return {
        "study_id": s.study_id, "subject_id": s.subject_id, "source": source, "report": s.report,
        "sections": s.sections or {}, "image_ids": [img.image_id for img, _ in kept],
        "views": [d.view or "UNKNOWN" for _, d in kept],
        "dicom_identifying_attributes": sorted({a for h in headers for a in h["identifying"]}),
        "burned_in_annotation": any(h.get("burned_in_annotation") == "YES" for h in headers),
        "private_tags": max((h.get("private_tags", 0) for h in headers), default=0),
        "meta": json.dumps(s.meta, sort_keys=True, default=str),
    }


def summarize(records: dict, records_ok: bool, n_studies_in: int, n_img_in: int, study_rows, image_rows,
              quarantine, flagged) -> dict:
    """summary.json's counts; records_ok: every raw record the reader consumed ended in a study, once."""
    sq, s_reasons = quarantine.counts("study")
    iq, i_reasons = quarantine.counts("image")
    return {
        "records": records,
        "studies": {"in": n_studies_in, "out": len(study_rows), "quarantined": sq, "by_reason": s_reasons,
                    "text_only": sum(1 for r in study_rows if not r["image_ids"])},
        "images": {"in": n_img_in, "out": len(image_rows), "quarantined": iq, "by_reason": i_reasons},
        "conservation_ok": n_studies_in == len(study_rows) + sq and n_img_in == len(image_rows) + iq and records_ok,
        "flagged_kept": dict(flagged),
        "views": dict(sorted(Counter(r["view"] or "UNKNOWN" for r in image_rows).items())),  # of kept images
        "splits": {name: {"studies": sum(1 for r in study_rows if r["split"] == name),
                          "subjects": len({r["subject_id"] for r in study_rows if r["split"] == name}),
                          "from_source": sum(1 for r in study_rows if r["split"] == name
                                             and r["split_source"] == "source")}
                   for name in SPLITS},
    }

