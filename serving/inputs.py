"""Request types and the checks that turn bad input into a clear 4xx (never a 5xx).

Uploads are decoded while the request is parsed, before adaptive batching, so one corrupt file fails
only its own request, never the batch it would have joined. Error messages are fixed sentences:
nothing read from a DICOM header (or any other upload content) is echoed or logged.
"""

from __future__ import annotations

import io
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument
from pydantic import BaseModel, Field, StringConstraints, WrapValidator, model_validator

from serving.config import serve_params

log = logging.getLogger("cxr.serving")
SERVE = serve_params()

# What a client may declare; octet-stream (a file without an extension) is sniffed.
ACCEPTED = {"application/dicom": "dicom", "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
            "application/octet-stream": None}


class UnsupportedMediaType(BentoMLException):
    error_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class PayloadTooLarge(BentoMLException):
    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Unprocessable(BentoMLException):
    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


# How uploads are decoded: the loaded CLIP model's own settings (set by the service at start-up), so
# a served image gets exactly the pixels CXRClip.encode_image would give the same file.
DECODE: dict = {"resolution": 256, "percentiles": (0.5, 99.5)}


def configure_decoding(resolution: int, percentiles) -> None:
    DECODE.update(resolution=int(resolution), percentiles=tuple(percentiles))


# Checks a text query against the loaded models (e.g. an instruction that leaves no room for text
# within the encoder's max_length), while the request is parsed: a failure inside an adaptive batch
# would fail every request batched with it. Set by the service at start-up.
TEXT_CHECKS: list = []


def sniff(data: bytes) -> str | None:
    """The image format from its magic bytes (DICOM Part 10 preamble, PNG, JPEG)."""
    if data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


def _has_pixel_data(data: bytes) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=False, defer_size="1 KB")
    except Exception:  # unparseable: reported as corrupt by the caller
        return True
    return any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def decode_upload(data: bytes, declared: str | None) -> np.ndarray:
    """An upload's bytes -> the uint8 frame the CLIP preprocessing takes (components/clip/preprocess)."""
    from components.clip.preprocess import load_frame

    declared = (declared or "application/octet-stream").split(";")[0].strip().lower()
    if declared not in ACCEPTED:
        raise UnsupportedMediaType(f"unsupported content type {declared!r}: send application/dicom, "
                                   "image/png or image/jpeg")
    if len(data) > SERVE.max_upload_bytes:
        raise PayloadTooLarge(f"upload larger than {SERVE.max_upload_bytes} bytes")
    if not data:
        raise InvalidArgument("empty upload")
    kind, claimed = sniff(data), ACCEPTED[declared]
    if kind is None and claimed != "dicom":  # DICOMs without the Part 10 preamble exist; others must match
        raise UnsupportedMediaType("the upload is not a DICOM, PNG or JPEG file")
    if kind and claimed and kind != claimed:
        raise UnsupportedMediaType(f"declared {declared} but the content is {kind.upper()}")
    kind = kind or "dicom"
    try:
        return load_frame(data, DECODE["resolution"], DECODE["percentiles"])
    except Exception:  # noqa: BLE001 - any decoder failure on untrusted bytes is the upload's fault
        pass
    # Only a failed decode pays for a second look, to say why (the happy path parses once).
    log.info("rejected a %s upload: could not be decoded", kind)  # the reason only, never content
    if kind == "dicom" and not _has_pixel_data(data):
        raise Unprocessable("the DICOM has no pixel data (a structured report or a header-only object?)")
    raise Unprocessable(f"could not decode the {kind.upper()} image (corrupt or unsupported)")


def _read(value: Any) -> tuple[bytes, str | None]:
    from starlette.datastructures import UploadFile

    limit = SERVE.max_upload_bytes + 1  # read one byte past the limit to tell "too large" apart
    if isinstance(value, UploadFile):
        return value.file.read(limit), value.content_type
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    # Never a path or string: a request must not make the server read its own files.
    raise InvalidArgument("expected an uploaded file (multipart/form-data)")


def _upload(value: Any, handler) -> np.ndarray:
    if isinstance(value, np.ndarray):  # already decoded
        return value
    return decode_upload(*_read(value))


# A DICOM / PNG / JPEG upload (multipart file field), decoded to a frame during request parsing.
Upload = Annotated[Path, WrapValidator(_upload)]

Text = Annotated[str, StringConstraints(min_length=1, max_length=SERVE.max_text_chars, pattern=r"\S")]
Encoder = Literal["llm2vec4cxr", "clip"]


class TextQuery(BaseModel):
    """One text to embed, with its options (a bare string means all defaults)."""

    text: Text
    encoder: Encoder = "llm2vec4cxr"  # LLM2VEC4CXR, or the text side of the CLIP model
    instruction: str | None = Field(None, max_length=1000)  # llm2vec4cxr: None = the trained one, "" = none
    section: Literal["full", "findings", "impression"] = "full"  # clip: which report section the text is

    @model_validator(mode="after")
    def _options_match_encoder(self):
        if self.encoder == "clip" and self.instruction is not None:
            raise ValueError("instruction applies to encoder llm2vec4cxr; the clip text side takes section")
        if self.encoder == "llm2vec4cxr" and self.section != "full":
            raise ValueError("section applies to encoder clip; llm2vec4cxr takes instruction")
        for check in TEXT_CHECKS:
            check(self)  # ValueError -> 400
        return self


Texts = Annotated[list[Text | TextQuery], Field(min_length=1, max_length=SERVE.max_texts)]
Uploads = Annotated[list[Upload], Field(min_length=1, max_length=SERVE.max_images)]


def as_query(item: str | TextQuery) -> TextQuery:
    return item if isinstance(item, TextQuery) else TextQuery.model_construct(text=item, encoder="llm2vec4cxr",
                                                                             instruction=None, section="full")
