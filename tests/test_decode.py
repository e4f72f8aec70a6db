"""components.ingest.decode: DICOM / PNG / JPEG decoding, its reason codes and the header audit.

Every input is a small dataset built here, so each test pins one decoding path.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from components.ingest.decode import DecodeConfig, DecodeError, _transfer, decode
from components.ingest.records import REASONS

RES = 64
CFG = DecodeConfig(resolution=RES)


# ---------------------------------------------------------------- helpers


def _phantom(rows: int = 128, cols: int = 128, bits: int = 12, seed: int = 0) -> np.ndarray:
    """Stored values with structure: a bright disc on a vertical ramp, plus a little noise."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    ramp = 0.15 + 0.5 * yy / max(rows - 1, 1)
    disc = 0.3 * (((yy - rows * 0.4) ** 2 + (xx - cols * 0.6) ** 2) < (min(rows, cols) * 0.2) ** 2)
    noise = np.random.default_rng(seed).normal(0, 0.01, (rows, cols))
    top = 2**bits - 1
    return np.clip(np.rint((ramp + disc + noise) * 0.9 * top), 0, top).astype(np.uint16)


def _dataset(stored: np.ndarray, *, bits: int = 12, photometric: str = "MONOCHROME2", slope: float = 1.0,
             intercept: float = 0.0, window: tuple[float, float] | None = None, view: str | None = "PA",
             patient_id: str = "10000001") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["test", str(stored.sum())])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if view is not None:
        ds.ViewPosition = view
    ds.PatientID = patient_id
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _reason(path, cfg=CFG, **kw) -> str:
    with pytest.raises(DecodeError) as info:
        decode(path, cfg, **kw)
    assert info.value.reason in REASONS
    return info.value.reason


def _minmax(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min())


# ---------------------------------------------------------------- transfer functions


@pytest.mark.parametrize("bits,slope,intercept,window", [
    (12, 1.0, 0.0, (2048, 4096)),         # window covering the whole stored range
    (12, 1.0, 0.0, (1500, 1000)),         # narrow window: both ends clip
    (12, 2.0, -1024.0, (2000, 3000)),     # rescale then window in modality units
    (14, 0.5, 100.0, (4000, 5000)),
    (16, 1.0, -1024.0, (20000, 30001)),
    (12, 1.0, 0.0, None),                 # no window: the modality LUT alone
])
def test_linear_transfer_matches_pydicom(bits, slope, intercept, window):
    x = np.arange(2**bits, dtype=np.uint16).reshape(-1, 2**(bits // 2))
    ds = _dataset(x, bits=bits, slope=slope, intercept=intercept, window=window)
    ours = np.asarray(_transfer(ds, x.dtype)(x.astype(np.float32)), dtype=np.float64)
    ref = apply_voi_lut(apply_modality_lut(x, ds), ds)
    assert not np.allclose(_minmax(ours), 0)  # not degenerate
    np.testing.assert_allclose(_minmax(ours), _minmax(ref), atol=1e-5)
    if window is not None and window[1] < 2**bits * slope:  # the window really clipped something
        assert (ours == ours.min()).sum() > 1 or (ours == ours.max()).sum() > 1


def test_voi_lut_sequence_goes_through_pydicom(tmp_path):
    stored = _phantom()
    plain = decode(_save(_dataset(stored), tmp_path / "plain.dcm"), CFG).pixels
    ds = _dataset(stored, window=(2048, 4096))
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    # A monotone gamma curve, a different shape from the window the file also carries.
    item.LUTData = np.rint(65535 * (np.arange(4096) / 4095) ** 0.5).astype(np.uint16).tolist()
    ds.VOILUTSequence = [item]
    ds["VOILUTSequence"][0]["LUTData"].VR = "US"
    reread = pydicom.dcmread(_save(ds, tmp_path / "lut.dcm"))
    assert "VOILUTSequence" in reread
    out = decode(tmp_path / "lut.dcm", CFG).pixels
    assert out.shape == (RES, RES) and out.max() == 255
    # Same ordering of brightness as the plain decode (the window alone would give exactly that),
    # but the square-root curve lifted the mid-tones: the LUT, not the window, was applied.
    assert np.corrcoef(out.ravel(), plain.ravel())[0, 1] > 0.9
    assert out.mean() > plain.mean() + 8


def test_sigmoid_voi_function_goes_through_pydicom(tmp_path):
    stored = _phantom()
    ds = _dataset(stored, window=(1800, 1500))
    ds.VOILUTFunction = "SIGMOID"
    out = decode(_save(ds, tmp_path / "sigmoid.dcm"), CFG).pixels
    linear = decode(_save(_dataset(stored, window=(1800, 1500)), tmp_path / "linear.dcm"), CFG).pixels
    assert out.shape == (RES, RES) and out.max() == 255 and out.min() == 0
    assert np.corrcoef(out.ravel().astype(float), linear.ravel().astype(float))[0, 1] > 0.9


# ---------------------------------------------------------------- display pipeline


def test_percentile_stretch_spans_full_range(tmp_path):
    stored = (_phantom() // 8 + 1000).astype(np.uint16)  # a narrow band of stored values
    out = decode(_save(_dataset(stored), tmp_path / "a.dcm"), CFG).pixels
    assert out.dtype == np.uint8 and out.shape == (RES, RES)
    assert out.min() == 0 and out.max() == 255
    assert np.percentile(out, 90) - np.percentile(out, 10) > 60


def test_constant_image_is_blank(tmp_path):
    stored = np.full((96, 96), 1234, dtype=np.uint16)
    assert _reason(_save(_dataset(stored, window=(1000, 2000)), tmp_path / "c.dcm")) == "image_blank"


def test_aspect_ratio_kept_and_centred(tmp_path):
    yy = np.mgrid[0:300, 0:150][0]
    stored = (500 + 10 * yy).astype(np.uint16)  # vertical ramp: every column has dark and bright pixels
    out = decode(_save(_dataset(stored), tmp_path / "tall.dcm"), CFG).pixels
    assert out.shape == (RES, RES)
    content = np.flatnonzero(out.any(axis=0))
    assert content[0] == RES // 4 and content[-1] == RES - RES // 4 - 1  # 32 wide, 16 zero columns each side
    assert (out[:, : RES // 4] == 0).all() and (out[:, RES - RES // 4:] == 0).all()
    assert out[:, RES // 4: RES - RES // 4].max(axis=0).min() > 200  # the image fills its band
    assert out[-1, RES // 2] > out[0, RES // 2]  # top stays at the top


def test_junk_in_unused_high_bits_is_ignored(tmp_path):
    clean = _phantom(bits=12)
    dirty = clean.copy()
    rng = np.random.default_rng(1)
    idx = rng.choice(dirty.size, size=dirty.size // 3, replace=False)
    dirty.ravel()[idx] |= np.uint16(0x8000)  # bit 15 set, BitsStored is 12
    assert dirty.max() >= 2**15
    a = decode(_save(_dataset(clean), tmp_path / "clean.dcm"), CFG).pixels
    b = decode(_save(_dataset(dirty), tmp_path / "dirty.dcm"), CFG).pixels
    assert np.array_equal(a, b)


def test_sparse_junk_in_high_bits_after_a_large_shrink(tmp_path):
    clean = (_phantom(1024, 1024) // 4).astype(np.uint16)  # a dim 12-bit image: max ~1000
    dirty = clean.copy()
    idx = np.random.default_rng(1).choice(dirty.size, size=dirty.size // 200, replace=False)
    dirty.ravel()[idx] |= np.uint16(0x8000)  # 0.5 % of pixels; each 32x32 block gets ~5 of them
    cfg = DecodeConfig(resolution=32)
    a = decode(_save(_dataset(clean), tmp_path / "clean.dcm"), cfg).pixels
    b = decode(_save(_dataset(dirty), tmp_path / "dirty.dcm"), cfg).pixels
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_monochrome1_is_inverted(tmp_path):
    stored = _phantom()
    m2 = decode(_save(_dataset(stored), tmp_path / "m2.dcm"), CFG).pixels
    m1 = decode(_save(_dataset(4095 - stored, photometric="MONOCHROME1"), tmp_path / "m1.dcm"), CFG).pixels
    assert np.abs(m1.astype(int) - m2.astype(int)).mean() < 2


# ---------------------------------------------------------------- compressed transfer syntaxes


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k"])
def test_compressed_lossless_decodes_like_uncompressed(tmp_path, syntax):
    stored = _phantom()
    ds = _dataset(stored, window=(1800, 3000))
    ref = decode(_save(copy.deepcopy(ds), tmp_path / "native.dcm"), CFG)
    ds.compress(syntax)
    path = _save(ds, tmp_path / "packed.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    out = decode(path, CFG)
    assert np.array_equal(out.pixels, ref.pixels)
    assert out.pixel_hash == ref.pixel_hash


def _encapsulated(tmp_path: Path, syntax: str, frame: bytes = b"junk") -> Path:
    """A dataset whose pixel data is one encapsulated frame in `syntax`.

    pydicom 3.0 refuses to write a transfer syntax it does not know (JPEG XL), so the file is
    written as MPEG2 MP@ML, a UID of the same padded length, and the UID is patched in the bytes.
    """
    ds = _dataset(_phantom(64, 64))
    ds.file_meta.TransferSyntaxUID = MPEG2
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path = _save(ds, tmp_path / "packed.dcm")
    assert len(syntax) == len(MPEG2)
    path.write_bytes(path.read_bytes().replace(MPEG2.encode(), syntax.encode()))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    return path


MPEG2 = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile / Main Level: no decoder in pydicom
JPEG_XL = "1.2.840.10008.1.2.4.110"  # JPEG XL Lossless: newer than pydicom 3.0's UID dictionary


def test_known_transfer_syntax_without_decoder(tmp_path):
    assert _reason(_encapsulated(tmp_path, MPEG2)) == "dicom_codec_unavailable"


def test_jpeg_xl_has_no_decoder(tmp_path):
    assert _reason(_encapsulated(tmp_path, JPEG_XL)) == "dicom_codec_unavailable"


def test_corrupt_stream_with_a_decoder_is_unreadable(tmp_path):
    ds = _dataset(_phantom(64, 64))
    ds.compress(RLELossless)
    ds.PixelData = encapsulate([b"junk" * 40])  # RLE is always decodable: pydicom's own decoder
    ds["PixelData"].is_undefined_length = True
    assert _reason(_save(ds, tmp_path / "rle.dcm")) == "dicom_unreadable"


# ---------------------------------------------------------------- reason codes


def test_missing_file(tmp_path):
    assert _reason(tmp_path / "nope.dcm") == "image_file_missing"
    assert _reason(tmp_path / "nope.png") == "image_file_missing"


def test_non_dicom_bytes(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"this is not a DICOM file\n" * 200)
    assert _reason(path) == "dicom_unreadable"


def test_dicom_cut_inside_pixel_data(tmp_path):
    path = _save(_dataset(_phantom()), tmp_path / "full.dcm")
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * 0.7)])  # the header is ~300 bytes, pixels 32 KiB
    assert _reason(cut) == "dicom_truncated"


def test_lateral_view(tmp_path):
    path = _save(_dataset(_phantom(), view="LL"), tmp_path / "lat.dcm")
    assert _reason(path) == "view_not_frontal"
    out = decode(path, DecodeConfig(resolution=RES, frontal_only=False))
    assert out.view == "LATERAL" and out.pixels.shape == (RES, RES) and out.pixels.max() == 255


def test_view_from_hint_when_header_has_none(tmp_path):
    path = _save(_dataset(_phantom(), view=None), tmp_path / "noview.dcm")
    assert decode(path, CFG, view_hint="AP").view == "AP"
    assert _reason(path, view_hint="LATERAL") == "view_not_frontal"


def test_dataset_without_pixel_data(tmp_path):
    ds = _dataset(_phantom(32, 32))
    del ds.PixelData
    assert _reason(_save(ds, tmp_path / "nopix.dcm")) == "dicom_no_pixels"


def test_unreadable_png(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    assert _reason(path, view_hint="PA") == "image_unreadable"


# ---------------------------------------------------------------- PNG / JPEG


def test_bitmaps_decode(tmp_path):
    stored = _phantom(bits=16)
    paths = {
        "png16": tmp_path / "a16.png",
        "png8": tmp_path / "a8.png",
        "jpg": tmp_path / "a.jpg",
    }
    Image.fromarray(stored).save(paths["png16"])
    assert Image.open(paths["png16"]).mode in ("I;16", "I")  # really a 16-bit file
    eight = (stored >> 8).astype(np.uint8)
    Image.fromarray(eight).save(paths["png8"])
    Image.fromarray(eight).save(paths["jpg"], quality=95)
    outs = {}
    for name, path in paths.items():
        d = decode(path, CFG, view_hint="pa")
        assert d.view == "PA"
        assert d.pixels.shape == (RES, RES) and d.pixels.dtype == np.uint8
        assert d.pixels.min() == 0 and d.pixels.max() == 255
        assert d.header == {"identifying": [], "burned_in_annotation": None, "private_tags": 0}
        outs[name] = d.pixels.astype(int)
    for name in ("png8", "jpg"):  # the same picture, whatever its bit depth or codec
        assert np.abs(outs[name] - outs["png16"]).mean() < 3
    assert decode(paths["png8"], CFG).view is None
    assert _reason(paths["png8"], view_hint="LL") == "view_not_frontal"


# ---------------------------------------------------------------- header audit and hash


def test_header_audit(tmp_path):
    ds = _dataset(_phantom(32, 32), patient_id="12345678")
    ds.PatientName = "Doe^John"
    ds.InstitutionName = "General Hospital"
    ds.AccessionNumber = ""  # present but empty: fine
    ds.BurnedInAnnotation = "YES"
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "private value")
    block.add_new(0x02, "LO", "another")
    path = _save(ds, tmp_path / "phi.dcm")

    own = decode(path, CFG, subject_id="12345678").header
    assert sorted(own["identifying"]) == ["InstitutionName", "PatientName"]  # own pseudonym not flagged
    assert own["burned_in_annotation"] == "YES"
    assert own["private_tags"] == 3  # the private creator and its two elements

    other = decode(path, CFG, subject_id="87654321").header
    assert sorted(other["identifying"]) == ["InstitutionName", "PatientID", "PatientName"]

    clean = _dataset(_phantom(32, 32), patient_id="12345678")
    clean.PatientName = ""
    clean.BurnedInAnnotation = "NO"
    header = decode(_save(clean, tmp_path / "clean.dcm"), CFG, subject_id="12345678").header
    assert header == {"identifying": [], "burned_in_annotation": "NO", "private_tags": 0}


def test_pixel_hash(tmp_path):
    stored = _phantom()
    ds = _dataset(stored, window=(1800, 3000))
    a = decode(_save(ds, tmp_path / "a.dcm"), CFG)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    b = decode(_save(ds, tmp_path / "b.dcm"), CFG)
    assert a.pixel_hash == b.pixel_hash
    other = decode(_save(_dataset(_phantom(seed=5), window=(1800, 3000)), tmp_path / "c.dcm"), CFG)
    assert other.pixel_hash != a.pixel_hash
    assert len(a.pixel_hash) == 32
