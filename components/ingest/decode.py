"""Decode one image file (DICOM, PNG or JPEG) into a normalised uint8 square, or a reason why not.

Steps: modality LUT (rescale), VOI LUT or window, MONOCHROME1 inversion, robust percentile
stretch, aspect-preserving resize with zero padding. The resize runs first, on stored values, so
everything after it touches only resolution x resolution pixels.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder

from components.ingest.views import FRONTAL, header_view, normalise_view, view_class

cv2.setNumThreads(1)  # parallelism comes from worker processes; threads would oversubscribe cores

# PS3.15 Basic Application Level Confidentiality Profile: attributes that identify a person or
# place and must be empty in a de-identified file (PatientID is allowed when it is the pseudonym).
IDENTIFYING_ATTRIBUTES = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientAddress",
    "PatientTelephoneNumbers", "PatientMotherBirthName", "OtherPatientIDs", "OtherPatientNames",
    "OtherPatientIDsSequence", "MedicalRecordLocator", "IssuerOfPatientID", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician",
    "AccessionNumber", "StationName", "DeviceSerialNumber", "PatientComments", "Occupation",
    "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
    "CurrentPatientLocation", "ResponsiblePerson", "ResponsibleOrganization",
)
_IDENTIFYING_TAGS = tuple((k, Tag(k)) for k in IDENTIFYING_ATTRIBUTES)


class DecodeError(Exception):
    """An image that cannot be used; `reason` is a records.REASONS code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class DecodeConfig:
    resolution: int = 256
    percentiles: tuple[float, float] = (0.5, 99.5)
    frontal_only: bool = True
    unknown_view: str = "keep"  # under frontal_only, an image of unknown view: keep | quarantine
    max_pixels: int = 100_000_000  # per frame, from the header, before decoding (image_too_large)
    max_bytes: int = 512 * 2**20  # decoded (or inflated) bytes, from the header, before decoding


@dataclass
class Decoded:
    pixels: np.ndarray  # uint8 (resolution, resolution), aspect kept, zero padded
    view: str | None
    pixel_hash: str  # of the normalised pixels: finds re-sent copies of the same image
    header: dict  # audit fields; no values, only which attributes are filled


def decode(path: str | Path, cfg: DecodeConfig, view_hint: str | None = None,
           subject_id: str | None = None) -> Decoded:
    path = Path(path)
    if not path.is_file():
        raise DecodeError("image_file_missing", f"{path.name} not found")
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return _decode_bitmap(path, cfg, view_hint)
    return _decode_dicom(path, cfg, view_hint, subject_id)


def _check_view(view: str | None, cfg: DecodeConfig) -> None:
    if not cfg.frontal_only:
        return
    kind = view_class(view)
    if kind is None and cfg.unknown_view == "quarantine":
        raise DecodeError("view_unknown", "no ViewPosition, view code or source view")
    if kind is not None and kind != FRONTAL:
        raise DecodeError("view_not_frontal", f"view {view}")


_DEFLATED = "1.2.840.10008.1.2.1.99"
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _check_inflated_size(path: Path, cfg: DecodeConfig) -> None:
    """A deflated dataset is inflated whole by pydicom before any header can be read: inflate it
    here first, in bounded steps, and refuse one that grows past the byte cap (a deflate bomb)."""
    try:
        with open(path, "rb") as f:
            read_preamble(f, False)
            meta = _read_file_meta_info(f)
            if str(meta.get("TransferSyntaxUID", "")) != _DEFLATED:
                return
            inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
            while block := f.read(1 << 20):
                while block:
                    total += len(inflater.decompress(block, 1 << 22))
                    if total > cfg.max_bytes:
                        raise DecodeError("image_too_large", f"{path.name}: deflated data inflates past "
                                          f"ingest.max_image_bytes={cfg.max_bytes}")
                    block = inflater.unconsumed_tail
    except DecodeError:
        raise
    except Exception:  # noqa: BLE001 - the full read that follows reports what is wrong with the file
        return


def _check_size(ds, path: Path, cfg: DecodeConfig) -> None:
    """Refuse from the header alone an image whose decoded frame would exceed the caps."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.get("BitsAllocated", 16) or 16)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols > cfg.max_pixels:
        raise DecodeError("image_too_large", f"{path.name}: {cols}x{rows} pixels > ingest.max_image_pixels="
                          f"{cfg.max_pixels}")
    # the decoder materialises every frame, in at least 8 bits per sample
    nbytes = rows * cols * samples * frames * max(bits, 8) // 8
    if nbytes > cfg.max_bytes:
        raise DecodeError("image_too_large", f"{path.name}: {nbytes} decoded bytes > ingest.max_image_bytes="
                          f"{cfg.max_bytes}")


def _decode_dicom(path: Path, cfg: DecodeConfig, view_hint: str | None, subject_id: str | None) -> Decoded:
    _check_inflated_size(path, cfg)
    try:
        # large elements (the pixel data) stay on disk until touched: the header is checked first
        ds = pydicom.dcmread(path, defer_size="256 KB")
    except InvalidDicomError as e:
        raise DecodeError("dicom_unreadable", f"{path.name}: not DICOM ({type(e).__name__})") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError) as e:
        reason = "dicom_truncated" if _looks_truncated(path, e) else "dicom_unreadable"
        raise DecodeError(reason, f"{path.name}: {type(e).__name__}") from None
    view = header_view(ds) or normalise_view(view_hint)  # the file's own header first
    _check_view(view, cfg)
    header = _audit_header(ds, subject_id)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise DecodeError("dicom_no_pixels", path.name)
    _check_size(ds, path, cfg)
    syntax = ds.file_meta.TransferSyntaxUID
    if not _has_decoder(syntax):
        raise DecodeError("dicom_codec_unavailable", f"{path.name}: no decoder for transfer syntax "
                          f"{syntax.name if syntax.is_transfer_syntax else str(syntax)}")
    try:
        stored = _stored_pixels(ds, syntax)
    except DecodeError:
        raise
    except (NotImplementedError, RuntimeError, ValueError, TypeError, AttributeError) as e:
        truncated = isinstance(e, ValueError) and "length" in str(e)
        raise DecodeError("dicom_truncated" if truncated else "dicom_unreadable",
                          f"{path.name}: pixel data could not be decoded ({type(e).__name__})") from None
    invert = ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1"
    colour = ds.get("SamplesPerPixel", 1) != 1 or ds.get("PhotometricInterpretation") == "PALETTE COLOR"
    # grey values derived from colour are display values: no modality or VOI transfer applies
    transfer = (lambda x: x) if colour else _transfer(ds, stored.dtype)
    pixels = _display(stored, cfg, transfer, invert, None if colour else ds.get("BitsStored"))
    return Decoded(pixels, view, _digest(pixels), header)


def _has_decoder(syntax) -> bool:
    """Native encodings always decode; a compressed one needs an installed plugin (pylibjpeg, ...)."""
    if syntax.is_transfer_syntax and not syntax.is_compressed:
        return True
    try:
        return get_decoder(syntax).is_available
    except (NotImplementedError, ValueError):  # a syntax pydicom does not know at all
        return False


def _looks_truncated(path: Path, error: Exception) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM" and isinstance(error, (EOFError, OSError, ValueError))


def _stored_pixels(ds, syntax) -> np.ndarray:
    """Stored values of the first frame, grey; a zero-copy view for the common native 16-bit case."""
    rows, cols, allocated = ds.Rows, ds.Columns, ds.BitsAllocated
    samples, frames = ds.get("SamplesPerPixel", 1), int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if "PixelData" in ds and not syntax.is_compressed:
        # YBR_FULL_422 stores two samples per pixel (chroma halved horizontally), not three
        per_pixel = 2 if photometric == "YBR_FULL_422" else samples
        expected = rows * cols * per_pixel * frames * allocated // 8
        if len(ds.PixelData) < expected:
            raise DecodeError("dicom_truncated", f"{len(ds.PixelData)} of {expected} pixel bytes")
        if syntax.is_little_endian and allocated == 16 and samples == 1 and ds.PixelRepresentation == 0:
            return np.frombuffer(ds.PixelData, dtype="<u2", count=rows * cols).reshape(rows, cols)
    arr = ds.pixel_array
    if frames > 1:
        arr = arr[0]
    if photometric == "PALETTE COLOR":  # indices into the palette: look them up, then grey
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:  # colour: luminance is enough for a radiograph
        arr = arr.mean(axis=-1, dtype=np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DecodeError("dicom_pixel_format", f"{ds.filename and Path(ds.filename).name}: "
                          "float pixel data holds NaN or infinity")
    if arr.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        arr = arr.astype(np.float64)  # 32-bit integers and the like: OpenCV resizes floats only
    return arr


def _transfer(ds, stored_dtype):
    """Modality LUT then VOI LUT as one function of stored values.

    The linear rescale and LINEAR window (PS3.3 C.11.1 and C.11.2.1.2.1) are written out because
    they are nearly every radiograph and pydicom's general path costs more than the decode itself;
    LUT sequences and other VOI functions go to pydicom.
    """
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if "ModalityLUTSequence" in ds or "VOILUTSequence" in ds or function != "LINEAR":
        # LUTs are tables indexed by stored integers: round the shrunk image back to them
        return lambda x: apply_voi_lut(apply_modality_lut(np.rint(x).astype(stored_dtype), ds), ds)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))

    def linear(x):
        y = x.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        if center is None or width is None or width < 1:
            return y
        if width == 1:
            return (y > center - 0.5).astype(np.float64)
        return np.clip((y - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)

    return linear


def _first(value) -> float | None:
    """The first of a multi-valued window (a modality may offer several); None when absent."""
    if value is None or value == "":
        return None
    return float(value[0]) if isinstance(value, MultiValue) else float(value)


def _decode_bitmap(path: Path, cfg: DecodeConfig, view_hint: str | None) -> Decoded:
    view = normalise_view(view_hint)
    _check_view(view, cfg)
    try:
        with Image.open(path) as im:
            # the header gives the size: a decompression bomb is refused before any pixel is inflated
            if im.width * im.height > cfg.max_pixels:
                raise DecodeError("image_too_large", f"{path.name}: {im.width}x{im.height} pixels > "
                                  f"ingest.max_image_pixels={cfg.max_pixels}")
            im.load()
            arr = np.asarray(im if im.mode in ("L", "I;16", "I") else im.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DecodeError("image_unreadable", f"{path.name}: {type(e).__name__}") from None
    pixels = _display(arr, cfg, lambda x: x, invert=False)
    return Decoded(pixels, view, _digest(pixels), {"identifying": [], "burned_in_annotation": None,
                                                   "private_tags": 0})


def _display(stored: np.ndarray, cfg: DecodeConfig, transfer, invert: bool, bits: int | None = None) -> np.ndarray:
    """Stored values -> the uint8 square: shrink, modality + VOI transfer, percentile stretch, pad.

    Shrinking first (an area average, which also averages out quantum noise) means the per-pixel
    work at full resolution is one pass; the window and stretch then run on the small image.
    """
    if bits is not None and bits < 16 and stored.dtype == np.uint16 and stored.max() >= (1 << bits):
        stored = stored & np.uint16((1 << bits) - 1)  # junk in the unused high bits (overlays, garbage)
    small = _shrink(stored, cfg.resolution)
    values = np.asarray(transfer(small), dtype=np.float32)
    lo, hi = _percentiles(values[::2, ::2] if min(values.shape) >= 64 else values, cfg.percentiles)
    pixels = _stretch(values, lo, hi, invert)
    out = np.zeros((cfg.resolution, cfg.resolution), dtype=np.uint8)
    h, w = pixels.shape
    top, left = (cfg.resolution - h) // 2, (cfg.resolution - w) // 2
    out[top:top + h, left:left + w] = pixels
    return out


def _shrink(image: np.ndarray, size: int) -> np.ndarray:
    """Fit within size x size keeping the aspect ratio: an integer area reduction (OpenCV's fast
    path; the last < k rows/columns are cropped), then an area or linear step to the exact size."""
    h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    k = int(1 / scale)
    if k >= 2:
        image = cv2.resize(image[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    if image.shape != (nh, nw):
        shrinking = image.shape[0] > nh
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image


def _percentiles(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Order statistics at the two percentiles (a partial sort, not a full one)."""
    flat = values.ravel()
    ranks = [min(flat.size - 1, int(p / 100 * (flat.size - 1) + 0.5)) for p in percentiles]
    part = np.partition(flat, ranks)
    return float(part[ranks[0]]), float(part[ranks[1]])


def _stretch(values: np.ndarray, lo: float, hi: float, invert: bool) -> np.ndarray:
    if not hi > lo:
        raise DecodeError("image_blank", "no contrast between the robust percentiles")
    scaled = np.clip((values - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    if invert:
        scaled = 1.0 - scaled
    return np.rint(scaled * 255).astype(np.uint8)


def _digest(pixels: np.ndarray) -> str:
    """Hash of the normalised output: a re-sent copy matches even if re-encoded differently."""
    return hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()


def _audit_header(ds, subject_id: str | None) -> dict:
    """Which identifying attributes carry a value; raw bytes are inspected, nothing is decoded."""
    filled = []
    for keyword, tag in _IDENTIFYING_TAGS:
        if tag not in ds:
            continue
        value = ds.get_item(tag).value
        text = value.strip(b" \x00").decode("latin-1") if isinstance(value, bytes) else str(value or "").strip()
        if not text or text == "[]":
            continue
        if keyword == "PatientID" and subject_id is not None and text == str(subject_id):
            continue  # the dataset's own pseudonym
        filled.append(keyword)
    burned = ds.get("BurnedInAnnotation")
    return {
        "identifying": filled,
        "burned_in_annotation": str(burned).upper() if burned is not None else None,
        "private_tags": sum(1 for tag in ds.keys() if tag.is_private),
    }
