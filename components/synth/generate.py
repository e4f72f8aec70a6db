"""`cxr synth`: a deterministic synthetic MIMIC-CXR-style archive whose images and reports agree.

Layout written (as MIMIC-CXR 2.0):
    files/pNN/pSUBJECT/sSTUDY.txt            report
    files/pNN/pSUBJECT/sSTUDY/DICOM_ID.dcm   images
    cxr-record-list.csv, cxr-study-list.csv, mimic-cxr-2.0.0-metadata.csv
    truth.parquet                            truth per study: findings, labels, style, planted traps
    summary.json
Every random draw comes from a generator seeded by (seed, study index, purpose), so output is
byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.chexpert import OBSERVATIONS
from components.io import atomic_dir, stable, write_json
from components.parallel import ordered_map
from components.params import SynthParams
from components.synth import dicom, traps
from components.synth.phantom import burn_in_text, render_view
from components.synth.phi import plant_report_phi
from components.synth.report_writer import render_report
from components.synth.truth import StudyTruth, sample_truth, subjects_for

PROCEDURE = {"PA": "CHEST (PA AND LAT)", "AP": "CHEST (PORTABLE AP)"}
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}
BURNED_IN_TEXT = "HOLLOWAY, JANE  MRN 4829103  03/14/2021"


def study_dir(root: Path, subject_id: int, study_id: int) -> Path:
    return root / "files" / f"p{str(subject_id)[:2]}" / f"p{subject_id}" / f"s{study_id}"


def dicom_id_for(seed: int, study_id: int, view_index: int) -> str:
    h = hashlib.sha1(f"{seed}/{study_id}/{view_index}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def _write_study(job: tuple) -> dict:
    """Render and write one study; runs in a worker process. Returns its truth and file records."""
    root, cfg, truth, content, trap = job
    seed = cfg.seed
    folder = study_dir(root, truth.subject_id, truth.study_id)
    rng_report = np.random.default_rng([seed, content, 1])
    rng_trap = np.random.default_rng([seed, truth.study_id, 4])

    report = render_report(truth, rng_report, cfg.noise)
    phi: list[dict] = []
    if trap == "report_phi":
        report, phi = plant_report_phi(report, rng_trap)
    data = report.encode("utf-8")
    if trap == "non_utf8_report":
        data = traps.break_utf8(data)
    if trap != "missing_report":
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.with_suffix(".txt").write_bytes(data)

    images = []
    if trap != "missing_image":
        folder.mkdir(parents=True, exist_ok=True)
        for k, view in enumerate(truth.views):
            pixels = render_view(truth, view, cfg.image_size, np.random.default_rng([seed, content, 2, k]))
            frontal = k == 0
            if trap == "burned_in_annotation" and frontal:
                pixels = burn_in_text(pixels, BURNED_IN_TEXT)
            ids = dicom.DicomIds(truth.subject_id, truth.study_id, dicom_id_for(seed, truth.study_id, k), view)
            ds = dicom.encode(pixels, ids, np.random.default_rng([seed, content, 3, k]),
                              monochrome1_rate=cfg.monochrome1_rate, pixel_spacing_mm=430.0 / cfg.image_size,
                              identifying=trap == "dicom_header_phi",
                              burned_in=trap == "burned_in_annotation" and frontal)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            blob = buf.getvalue()
            if frontal and trap == "truncated_dicom":
                blob = traps.truncate(blob, rng_trap)
            elif frontal and trap == "corrupt_dicom":
                blob = traps.corrupt(blob, rng_trap)
            path = folder / f"{ids.dicom_id}.dcm"
            path.write_bytes(blob)
            images.append({"dicom_id": ids.dicom_id, "view": view, "rows": int(ds.Rows),
                           "columns": int(ds.Columns), "path": path.relative_to(root).as_posix()})
    return {"truth": truth, "phi": phi, "images": images,
            "report_path": folder.with_suffix(".txt").relative_to(root).as_posix()}


def generate(cfg: SynthParams, out: str | Path | None = None, progress: bool = True) -> dict:
    """Write the synthetic archive to `out` (replaced atomically); return the summary."""
    start = time.perf_counter()
    n, workers = cfg.n_studies, cfg.workers
    subjects = subjects_for(n, cfg.seed, cfg.studies_per_subject)
    trap_of, duplicate_of = traps.assign_traps(n, cfg.traps.model_dump(), cfg.seed)
    truths = [sample_truth(i, subjects[i], cfg.seed, cfg) for i in range(n)]
    for copy, original in duplicate_of.items():  # a duplicate is the original study under a new id
        truths[copy] = replace(truths[original], study_id=truths[copy].study_id)
    for i, trap in trap_of.items():
        truths[i] = replace(truths[i], traps=[trap])

    with atomic_dir(out or cfg.out) as root:
        jobs = [(root, cfg, truths[i], duplicate_of.get(i, i), trap_of.get(i)) for i in range(n)]
        with ordered_map(_write_study, jobs, workers) as written:
            results = list(tqdm(written, total=n, desc="synth", unit="study", disable=not progress))
        _write_tables(root, results, {truths[c].study_id: truths[o].study_id for c, o in duplicate_of.items()})
        summary = {
            "n_studies": n,
            "n_subjects": len({t.subject_id for t in truths}),
            "n_images": sum(len(r["images"]) for r in results),
            "styles": pd.Series([t.style for t in truths]).value_counts().sort_index().to_dict(),
            "traps": {t: sum(1 for v in trap_of.values() if v == t) for t in traps.TRAPS},
            "seed": cfg.seed,
            "seconds": round(time.perf_counter() - start, 2),
        }
        write_json(root / "summary.json", stable(summary))
    write_json(cfg.metrics, {"studies": n, "subjects": summary["n_subjects"], "images": summary["n_images"],
                             "traps_planted": sum(summary["traps"].values())})
    return summary


def _write_tables(root: Path, results: list[dict], duplicate_of: dict[int, int]) -> None:
    records, studies, metadata, truth_rows = [], [], [], []
    for r in results:
        t: StudyTruth = r["truth"]
        studies.append({"subject_id": t.subject_id, "study_id": t.study_id, "path": r["report_path"]})
        for img in r["images"]:
            records.append({"subject_id": t.subject_id, "study_id": t.study_id, "dicom_id": img["dicom_id"],
                            "path": img["path"]})
            metadata.append({
                "dicom_id": img["dicom_id"], "subject_id": t.subject_id, "study_id": t.study_id,
                "PerformedProcedureStepDescription": PROCEDURE[t.views[0]], "ViewPosition": img["view"],
                "Rows": img["rows"], "Columns": img["columns"],
                "StudyDate": 21800101 + t.study_id % 28, "StudyTime": 101010.0 + t.study_id % 50,
                "ProcedureCodeSequence_CodeMeaning": PROCEDURE[t.views[0]],
                "ViewCodeSequence_CodeMeaning": VIEW_MEANING[img["view"]],
                "PatientOrientationCodeSequence_CodeMeaning": "Erect" if t.views[0] == "PA" else "Recumbent",
            })
        row = t.to_row()
        row["findings"] = json.dumps(row["findings"], sort_keys=True)
        row["trap"] = t.traps[0] if t.traps else None
        # where the trap must end, so that ingest can account for it without knowing the generator
        row["trap_stage"], row["trap_reason"] = traps.EXPECTED_OUTCOME[row["trap"]] if row["trap"] else (None, None)
        row["planted_phi"] = json.dumps(r["phi"])
        row["duplicate_of"] = duplicate_of.get(t.study_id)
        row["dicom_ids"] = [img["dicom_id"] for img in r["images"]]
        truth_rows.append(row)
    pd.DataFrame(records, columns=["subject_id", "study_id", "dicom_id", "path"]).to_csv(
        root / "cxr-record-list.csv", index=False)
    pd.DataFrame(studies).to_csv(root / "cxr-study-list.csv", index=False)
    pd.DataFrame(metadata).to_csv(root / "mimic-cxr-2.0.0-metadata.csv", index=False)
    truth = pd.DataFrame(truth_rows)
    truth["duplicate_of"] = truth["duplicate_of"].astype("Int64")
    for obs in OBSERVATIONS:
        truth[obs] = truth[obs].astype("float64")
    truth.to_parquet(root / "truth.parquet", index=False)

