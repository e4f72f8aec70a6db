"""`cxr hostile`: a corpus of hostile inputs, with the outcome ingest must give each one.

Three small datasets (a manifest, a MIMIC-CXR tree, an Open-I folder) hold one case per study:
broken CSV quoting, colliding file names, undecodable and NaN-like ids, files escaping the dataset
root, random-character and binary reports, oversized reports, every DICOM pixel encoding that
trips decoders (zero-byte, truncated, no pixels, RGB, 32-bit, float, big-endian, deflated, palette
colour, YBR 4:2:2, compressed without a decoder, 1x1, huge claims, a deflate bomb), a PNG bomb and
bad XML. expected.csv lists, per source and record, the reason it must be quarantined with ("" for
kept). params.yaml holds the small caps the bombs are sized against.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian, UID, generate_uid

from components.io import atomic_dir, write_json

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
NO_DECODER = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no pixel decoder exists for it in pydicom
REPORT = "FINDINGS: Heart size is normal. No pleural effusion or pneumothorax.\nIMPRESSION: No acute process. ({})"
CAPS = {"max_image_pixels": 4_000_000, "max_image_bytes": 16 << 20, "max_report_bytes": 64 << 10}


def _dicom(path: Path, pixels: np.ndarray | None, *, syntax: str = ExplicitVRLittleEndian,
           photometric: str = "MONOCHROME2", pixel_bytes: bytes | None = None, **attrs) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CR_STORAGE, generate_uid(entropy_srcs=[path.name])
    meta.TransferSyntaxUID = UID(syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CR_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition, ds.PatientID = "CR", "PA", ""
    if pixels is not None or pixel_bytes is not None:
        shape = pixels.shape if pixels is not None else (attrs.pop("rows"), attrs.pop("cols"))
        ds.Rows, ds.Columns = shape[0], shape[1]
        ds.SamplesPerPixel = shape[2] if len(shape) == 3 else 1
        ds.PhotometricInterpretation = photometric
        bits = 8 * (pixels.dtype.itemsize if pixels is not None else 2)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        ds.PixelRepresentation = 0
        if ds.SamplesPerPixel > 1:
            ds.PlanarConfiguration = 0
        if pixel_bytes is None:
            big = syntax == ExplicitVRBigEndian
            pixel_bytes = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<")).tobytes()
        ds.PixelData = pixel_bytes
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def _radiograph(rng, shape=(64, 64), dtype=np.uint16) -> np.ndarray:
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    ramp = np.linspace(0.1, 0.9, shape[1])[None, :] * np.ones(shape[:2])
    noisy = ramp + rng.normal(0, 0.05, shape[:2])
    return (np.clip(noisy, 0, 1) * top * 0.9).astype(dtype)


def _dicom_cases(folder: Path, rng) -> dict[str, str]:
    """file name -> expected image reason ("" = decoded and kept)."""
    folder.mkdir(parents=True)
    img = _radiograph(rng)
    _dicom(folder / "ok.dcm", img)
    (folder / "zero_byte.dcm").write_bytes(b"")
    _dicom(folder / "truncated.dcm", img)
    data = (folder / "truncated.dcm").read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) - img.nbytes // 2])
    _dicom(folder / "no_pixels.dcm", None)
    rgb = np.stack([_radiograph(rng, dtype=np.uint8)] * 3, axis=-1)
    _dicom(folder / "rgb.dcm", rgb, photometric="RGB")
    _dicom(folder / "uint32.dcm", _radiograph(rng, dtype=np.uint32))
    _dicom(folder / "float.dcm", None, FloatPixelData=_radiograph(rng, dtype=np.float32).astype("<f4").tobytes(),
           Rows=64, Columns=64, SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2", BitsAllocated=32)
    _dicom(folder / "big_endian.dcm", img, syntax=ExplicitVRBigEndian)
    _dicom(folder / "deflated.dcm", img, syntax=DeflatedExplicitVRLittleEndian)
    # a deflate bomb: 32 MiB of pixels that compress to a few KiB (the byte cap is 16 MiB)
    _dicom(folder / "deflate_bomb.dcm", np.zeros((4096, 4096), np.uint16), syntax=DeflatedExplicitVRLittleEndian)
    lut = (np.arange(256) * 257).astype("<u2").tobytes()
    _dicom(folder / "palette.dcm", _radiograph(rng, dtype=np.uint8), photometric="PALETTE COLOR",
           RedPaletteColorLookupTableDescriptor=[256, 0, 16], GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
           BluePaletteColorLookupTableDescriptor=[256, 0, 16], RedPaletteColorLookupTableData=lut,
           GreenPaletteColorLookupTableData=lut, BluePaletteColorLookupTableData=lut)
    grey = _radiograph(rng, dtype=np.uint8)
    y422 = np.empty((64, 64 * 2), np.uint8)  # Y0 Y1 Cb Cr per pixel pair
    y422[:, 0::4], y422[:, 1::4], y422[:, 2::4], y422[:, 3::4] = grey[:, 0::2], grey[:, 1::2], 128, 128
    _dicom(folder / "ybr_422.dcm", None, pixel_bytes=y422.tobytes(), rows=64, cols=64, photometric="YBR_FULL_422")
    _ybr_fix(folder / "ybr_422.dcm")
    _dicom(folder / "no_decoder.dcm", None, syntax=NO_DECODER, rows=64, cols=64,
           pixel_bytes=encapsulate([b"\xff\x4f\xff\x51" + bytes(64)]))
    _dicom(folder / "one_by_one.dcm", np.array([[1000]], np.uint16))
    _dicom(folder / "huge_claim.dcm", None, pixel_bytes=bytes(128), rows=60000, cols=60000)
    return {"ok.dcm": "", "zero_byte.dcm": "dicom_unreadable", "truncated.dcm": "dicom_truncated",
            "no_pixels.dcm": "dicom_no_pixels", "rgb.dcm": "", "uint32.dcm": "", "float.dcm": "",
            "big_endian.dcm": "", "deflated.dcm": "", "deflate_bomb.dcm": "image_too_large", "palette.dcm": "",
            "ybr_422.dcm": "", "no_decoder.dcm": "dicom_codec_unavailable", "one_by_one.dcm": "image_blank",
            "huge_claim.dcm": "image_too_large"}


def _ybr_fix(path: Path) -> None:
    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3, 0, 8, 8, 7
    ds.save_as(path, enforce_file_format=True)


def _png_cases(folder: Path, rng) -> dict[str, str]:
    Image.fromarray(_radiograph(rng, dtype=np.uint8)).save(folder / "ok.png")
    Image.new("1", (6000, 6000)).save(folder / "bomb.png")  # 36 Mpx behind a few KiB (cap: 4 Mpx)
    (folder / "not_an_image.png").write_text("this is not a PNG")
    return {"ok.png": "", "bomb.png": "image_too_large", "not_an_image.png": "image_unreadable"}


def _manifest(root: Path, rng, expected: list) -> None:
    img = root / "img"
    cases = _dicom_cases(img, rng) | _png_cases(img, rng)
    rows = []  # (study_id, subject_id, report, image_path, expected study reason, expected image reason)
    for n, (name, reason) in enumerate(sorted(cases.items())):
        study = f"img-{Path(name).stem}-{Path(name).suffix[1:]}"
        rows.append((study, f"p{n}", REPORT.format(n), f"img/{name}"))
        expected.append(("manifest", "image", Path(name).stem, reason))
        expected.append(("manifest", "study", study, reason))  # its only image decides
    # two images of one study named alike in different folders: both kept, ids made unique
    for sub in ("a", "b"):
        (img / sub).mkdir()
        Image.fromarray(_radiograph(rng, dtype=np.uint8)).save(img / sub / "view.png")
    rows += [("same-name", "p100", REPORT.format(100), "img/a/view.png"),
             ("same-name", "p100", REPORT.format(100), "img/b/view.png"),
             ("same-name", "p100", REPORT.format(100), "img/a/view.png")]  # and one row repeated
    expected += [("manifest", "study", "same-name", ""), ("manifest", "image", "view", ""),
                 ("manifest", "image", "view~2", ""), ("manifest", "image", "view~3", "duplicate_record")]
    # files leaving the dataset: a symlink to a system file, a .. path
    os.symlink("/etc/hostname" if Path("/etc/hostname").exists() else "/etc/passwd", img / "escape.png")
    rows += [("symlink-out", "p101", REPORT.format(101), "img/escape.png"),
             ("dotdot-out", "p102", REPORT.format(102), "img/../../outside.png")]
    expected += [("manifest", "image", "escape", "outside_dataset_root"),
                 ("manifest", "study", "symlink-out", "image_missing"),
                 ("manifest", "image", "outside", "outside_dataset_root"),
                 ("manifest", "study", "dotdot-out", "image_missing")]
    random_text = "".join(chr(int(c)) for c in rng.integers(0x250, 0x2FFFF, 5000) if not 0xD800 <= c < 0xE000)
    binary = "".join(chr(int(c)) for c in rng.integers(1, 32, 2000) if c not in (10, 13))
    rows += [("random-unicode", "p103", random_text, "img/ok.png"),
             ("binary-report", "p104", binary, "img/ok.png"),
             ("huge-report", "p105", REPORT.format(105) + " normal" * 20000, "img/ok.png"),
             ("nan-subject", "NaN", REPORT.format(106), "img/ok.png"),
             ("None", "p107", REPORT.format(107), "img/ok.png")]
    expected += [("manifest", "study", "random-unicode", "report_not_text"),
                 ("manifest", "study", "binary-report", "report_not_text"),
                 ("manifest", "study", "huge-report", "report_too_large"),
                 ("manifest", "study", "nan-subject", "source_record_invalid"),
                 ("manifest", "study", "None", "source_record_invalid")]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["study_id", "subject_id", "report", "image_path"])
    writer.writerows(rows)
    text = buf.getvalue().encode()
    # an undecodable byte in a study id, then a cell whose quote never closes: it swallows the next row
    text += b"bad-\xff-id,p108,Heart size normal.,img/ok.png\n"
    text += b'quote-open,p109,"Heart size normal.,img/ok.png\nswallowed,p110,No effusion.,img/ok.png\n'
    expected += [("manifest", "study", "bad-\\xff-id", "source_record_invalid")]
    n_lines = text.count(b"\n")
    expected += [("manifest", "study", f"line-{n_lines - 1}", "source_record_malformed"),
                 ("manifest", "study", f"line-{n_lines}", "source_record_malformed")]
    (root / "manifest.csv").write_bytes(text)


def _mimic(root: Path, rng, expected: list) -> None:
    """files/p10/p<subject>/s<study>/<dicom>.dcm with reports beside; a record list lists the images."""
    rows = []
    cases = {"1001": "", "1002": "outside_dataset_root", "1003": "report_not_utf8", "1004": "report_too_large"}
    for n, (study, reason) in enumerate(cases.items()):
        folder = root / "files" / "p10" / f"p{100 + n}" / f"s{study}"
        folder.mkdir(parents=True)
        _dicom(folder / f"d{study}.dcm", _radiograph(rng))
        rows.append({"subject_id": 100 + n, "study_id": study, "dicom_id": f"d{study}",
                     "path": f"files/p10/p{100 + n}/s{study}/d{study}.dcm"})
        report = folder.parent / f"s{study}.txt"
        if study == "1002":
            os.symlink("/etc/passwd", report)  # a report that resolves outside the dataset root
        elif study == "1003":
            report.write_bytes(b"FINDINGS: caf\xe9 normal heart size.\n")
        elif study == "1004":
            report.write_text(REPORT.format(study) + " normal" * 20000)
        else:
            report.write_text(REPORT.format(study))
        expected.append(("mimic", "study", study, reason))
    with open(root / "cxr-record-list.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["subject_id", "study_id", "dicom_id", "path"])
        writer.writeheader()
        writer.writerows(rows)


def _openi(root: Path, rng, expected: list) -> None:
    xml_dir, png_dir = root / "ecgen-radiology", root / "NLMCXR_png"
    xml_dir.mkdir(parents=True)
    png_dir.mkdir()
    Image.fromarray(_radiograph(rng, dtype=np.uint8)).save(png_dir / "CXR1_1_IM-0001-3001.png")
    (xml_dir / "1.xml").write_text(
        '<?xml version="1.0"?><eCitation><uId id="CXR1"/><MedlineCitation><Article><Abstract>'
        '<AbstractText Label="FINDINGS">Heart size normal. No effusion.</AbstractText>'
        '<AbstractText Label="IMPRESSION">Normal chest.</AbstractText></Abstract></Article></MedlineCitation>'
        '<parentImage id="CXR1_1_IM-0001-3001"/></eCitation>')
    (xml_dir / "2.xml").write_text("<eCitation><uId id='CXR2'/><unclosed>")
    laughs = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
    (xml_dir / "3.xml").write_text(f'<?xml version="1.0"?><!DOCTYPE b [{laughs}]><eCitation>'
                                   f'<uId id="CXR3"/><AbstractText Label="FINDINGS">&l9;</AbstractText></eCitation>')
    expected += [("openi", "study", "CXR1", ""), ("openi", "study", "2", "source_record_invalid"),
                 ("openi", "study", "3", "source_record_invalid")]


def generate_corpus(out: str | Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    expected: list[tuple] = []
    with atomic_dir(out) as root:
        _manifest(root / "manifest", rng, expected)
        _mimic(root / "mimic", rng, expected)
        _openi(root / "openi", rng, expected)
        with open(root / "expected.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["source", "level", "record_id", "reason"])
            writer.writerows(expected)
        # a handful of studies cannot meet the suite's split proportions: it reports, it does not block
        (root / "params.yaml").write_text(json.dumps({
            "ingest": {**CAPS, "workers": 1, "resolution": 32},
            "clean": {"quality": {"blocking": False}}}, indent=2) + "\n")
        write_json(root / "summary.json", {"cases": len(expected), "sources": ["manifest", "mimic", "openi"]})
    return {"out": str(out), "cases": len(expected)}

