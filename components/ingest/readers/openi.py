"""NLM Open-I Indiana University chest X-rays: ecgen-radiology/<n>.xml reports + NLMCXR_png images.

Each XML is one report: <uId id="CXR1"/>, labelled <AbstractText Label="FINDINGS"> sections,
<MeSH><major>/<automatic> terms and one <parentImage id="CXR1_1_IM-0001-3001"> per image, whose
PNG is named <id>.png. Open-I has no patient id. The PNGs carry no view; the DICOM release does, in
its headers (NLMCXR_dcm.tgz: one folder per report, files named without the "CXR" prefix and the
repeated report number: CXR1_1_IM-0001-3001 -> 1/1_IM-0001-3001.dcm, CXR2_IM-0652-1001 ->
2/2_IM-0652-1001.dcm). When it is present each image's view is read from its DICOM (and the DICOM
is the image when the PNG is absent). The XMLs are distributed apart from the images: a tree of
XMLs alone is a text-only corpus (ingest.require_images: false).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from components.ingest.readers._common import StudyGroups, count_record, natural_key
from components.ingest.records import RawImage, RawStudy
from components.ingest.views import dicom_view

XML_DIR = "ecgen-radiology"
PNG_DIR = "NLMCXR_png"


def _xml_files(root: Path) -> list[Path]:
    folder = root / XML_DIR if (root / XML_DIR).is_dir() else root
    files = sorted(folder.glob("*.xml"), key=lambda p: natural_key(p.name))
    return files or sorted(root.rglob("*.xml"), key=lambda p: natural_key(str(p)))


def check_root(root: Path) -> None:
    if not root.is_dir() or not _xml_files(root):
        raise FileNotFoundError(
            f"no {XML_DIR}/*.xml report files under {root}: is this an Open-I (IU X-ray) root?")


def read(root: Path, image_root: Path | None = None) -> Iterator[RawStudy]:
    root = Path(root).absolute()
    check_root(root)
    images = Path(image_root).absolute() if image_root else root
    files = _image_index(images)
    groups = StudyGroups()
    for path in _xml_files(root):
        study = _parse(path, files, images)
        study.records.append(count_record(path.name))
        # Keyed by file: two XMLs with the same uId are the same study listed twice.
        groups.get(study.study_id, path, lambda: study)
    yield from groups


def _image_index(root: Path) -> dict[str, Path]:
    """PNG and DICOM file name -> path, one walk of root (NLMCXR_png/, NLMCXR_dcm/, images/, loose)."""
    index: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # deterministic winner when a name occurs twice
        for name in sorted(filenames):
            if name.lower().endswith((".png", ".dcm")):
                index.setdefault(name, Path(dirpath) / name)
    return index


_DCM_NAME = re.compile(r"^CXR(\d+)_(?:\1_)?(.+)$")


def _dicom_names(image_id: str) -> list[str]:
    """File names the DICOM release may use for an image id, most likely first."""
    m = _DCM_NAME.match(image_id)
    names = [f"{m[1]}_{m[2]}.dcm"] if m else []
    return names + [f"{image_id.removeprefix('CXR')}.dcm", f"{image_id}.dcm"]


def _image(image_id: str, files: dict[str, Path], root: Path) -> RawImage:
    """The PNG when present, else the DICOM; the view from the DICOM's header when there is one."""
    png = files.get(f"{image_id}.png")
    dcm = next((files[n] for n in _dicom_names(image_id) if n in files), None)
    path = png or dcm or root / PNG_DIR / f"{image_id}.png"
    return RawImage(image_id=image_id, path=str(path), view=dicom_view(dcm) if dcm else None)


def _parse(path: Path, files: dict[str, Path], root: Path) -> RawStudy:
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return RawStudy(study_id=path.stem, subject_id=path.stem, report=None,
                        error="source_record_invalid",
                        error_detail=f"XML parse error at line {exc.position[0]}")
    except OSError as exc:
        return RawStudy(study_id=path.stem, subject_id=path.stem, report=None,
                        error="source_record_invalid",
                        error_detail=f"{path.name} unreadable ({type(exc).__name__})")
    uid = tree.find(".//uId")
    study_id = (uid.get("id") or "").strip() if uid is not None else ""
    if not study_id:
        return RawStudy(study_id=path.stem, subject_id=path.stem, report=None,
                        error="source_record_invalid", error_detail=f"{path.name} has no <uId id>")

    labelled = []
    for el in tree.iter("AbstractText"):
        label, text = (el.get("Label") or "").strip(), "".join(el.itertext()).strip()
        if label and text:
            labelled.append((label, text))
    sections = {label.lower(): text for label, text in labelled}
    # Sections are all that Open-I has: when every one is empty the text is "" (report_empty
    # is for the pipeline to decide), not missing.
    report = "\n".join(f"{label}: {text}" for label, text in labelled)

    images = []
    for parent in tree.iter("parentImage"):
        image_id = (parent.get("id") or "").strip()
        if image_id and all(im.image_id != image_id for im in images):
            images.append(_image(image_id, files, root))

    mesh = {"mesh_major": [], "mesh_automatic": []}
    for tag in ("major", "automatic"):
        for el in tree.iterfind(f".//MeSH/{tag}"):
            if (el.text or "").strip():
                mesh[f"mesh_{tag}"].append(el.text.strip())
    return RawStudy(study_id=study_id, subject_id=study_id, report=report, images=images,
                    sections=sections, meta=mesh)
