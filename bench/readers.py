"""Dataset readers on published layouts at scale: studies/s of listing (no pixel decoding).

    python bench/readers.py [--n 5000]

CheXpert Plus: N studies (two images each) with the images in each released layout (PNG/, PNG/PNG/,
DICOM/, CheXpert-v1.0/), so the layout search is measured where it costs most. Open-I: N/10 reports
with the NLMCXR_dcm release present, where each image's view is read from its DICOM header. Image
files are empty placeholders for CheXpert Plus (the reader only checks they exist) and real small
DICOMs for Open-I (headers are parsed). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.ingest.readers import read_source  # noqa: E402
from tests import real_layouts as L  # noqa: E402


def _chexpert(root: Path, n: int, layout: str) -> None:
    rows = []
    for i in range(n):
        for view, frontal in (("view1_frontal", "Frontal"), ("view2_lateral", "Lateral")):
            rel = f"train/patient{i:05d}/study1/{view}"
            values = dict.fromkeys(L.CHEXPERT_HEADER, "") | {
                "path_to_image": f"{rel}.jpg", "path_to_dcm": f"{rel}.dcm", "frontal_lateral": frontal,
                "ap_pa": "PA" if frontal == "Frontal" else "", "deid_patient_id": f"patient{i:05d}",
                "report": f"FINDINGS: study {i}.\nIMPRESSION: normal.", "split": "train"}
            rows.append([values[c] for c in L.CHEXPERT_HEADER])
            suffix = {"DICOM": ".dcm", "CheXpert-v1.0": ".jpg"}.get(layout, ".png")
            L.write(root / layout / f"{rel}{suffix}", b"")
    L.write_csv(root / "df_chexpert_plus_240401.csv", L.CHEXPERT_HEADER, rows)


def _timed(source: str, root: Path) -> dict:
    t0 = time.perf_counter()
    studies = list(read_source(source, root))
    seconds = time.perf_counter() - t0
    found = sum(Path(im.path).is_file() for s in studies for im in s.images)
    return {"studies": len(studies), "images_found": found, "seconds": round(seconds, 3),
            "studies_per_second": round(len(studies) / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    out: dict = {"n": args.n, "chexpert_plus": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in L.CHEXPERT_LAYOUTS:
            root = Path(tmp) / layout.replace("/", "-")
            _chexpert(root, args.n, layout)
            out["chexpert_plus"][layout] = _timed("chexpert-plus", root)
        root = Path(tmp) / "openi"
        for i in range(args.n // 10):
            n = i + 1
            ids = [f"CXR{n}_IM-{n:04d}-1001", f"CXR{n}_IM-{n:04d}-2001"]
            L.write(root / "ecgen-radiology" / f"{n}.xml", L.openi_xml(n, "Clear lungs.", "Normal.", ids))
            for k, image_id in enumerate(ids):
                L.bitmap(root / "NLMCXR_png" / f"{image_id}.png", k)
                L.dicom(root / "NLMCXR_dcm" / str(n) / f"{image_id.removeprefix('CXR')}.dcm", k, f"CXR{n}",
                        "PA" if k == 0 else "LL")
        out["openi_with_dicom_views"] = _timed("openi", root)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
