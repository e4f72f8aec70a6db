"""The one image preprocessing of LLM2CLIP4CXR: training, validation, CXRClip and the service use it.

`load_frame` turns any accepted input into the uint8 square that ingest stores (DICOM, PNG and JPEG go
through the ingest decoder, so a file and its ingested frame give the same pixels); `to_tensor` resizes
it to the tower's input, optionally augments it, and normalises it.

Grayscale is explicit: the single channel is replicated into the 3 channels every open_clip tower
takes (so RGB-pretrained weights apply unchanged), with per-channel mean/std from params.
Augmentation never flips horizontally: laterality ("left pleural effusion") is in the labels and the
report, and a mirrored image would teach the model that left and right are interchangeable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

DICOM_MAGIC_OFFSET = 128
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def _suffix_of(data: bytes) -> str:
    if data[:8] == PNG_MAGIC:
        return ".png"
    if data[:3] == JPEG_MAGIC:
        return ".jpg"
    if data[DICOM_MAGIC_OFFSET:DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return ".dcm"
    raise ValueError("unsupported image bytes: neither DICOM (DICM preamble), PNG nor JPEG")


def load_frame(source, resolution: int = 256, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """uint8 (H, W) from an ingest frame (returned as is), a DICOM / PNG / JPEG path, or such a file's
    bytes, decoded exactly as ingest decodes (components/ingest/decode.py) at `resolution`.
    Raises ValueError with the reason when the input cannot be used."""
    from components.ingest.decode import DecodeConfig, DecodeError, decode

    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 2:
            raise ValueError(f"a frame must be a 2-D uint8 array, got {source.dtype} with shape {source.shape}")
        return source
    cfg = DecodeConfig(resolution=resolution, percentiles=tuple(percentiles), frontal_only=False)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        fd, tmp = tempfile.mkstemp(suffix=_suffix_of(data))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return load_frame(Path(tmp), resolution, percentiles)
        finally:
            os.unlink(tmp)
    if not isinstance(source, (str, Path)):
        raise ValueError(f"unsupported image input of type {type(source).__name__}")
    try:
        return decode(Path(source), cfg).pixels
    except DecodeError as e:
        raise ValueError(f"unreadable image {Path(source).name}: {e.reason} ({e.detail})") from None


def _augment_matrix(size: int, rng: np.random.Generator, scale: tuple[float, float], max_degrees: float) -> np.ndarray:
    """A 2x3 affine: random resized crop (area fraction in `scale`, aspect kept) + small rotation.
    A rotation and a zoom only: the determinant stays positive, so the image is never mirrored."""
    area = rng.uniform(*scale)
    side = np.sqrt(area)  # crop side as a fraction of the image
    cx = rng.uniform(side / 2, 1 - side / 2) * size
    cy = rng.uniform(side / 2, 1 - side / 2) * size
    angle = rng.uniform(-max_degrees, max_degrees)
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0 / side)
    m[:, 2] += np.array([size / 2 - cx, size / 2 - cy])  # crop centre -> image centre
    return m


def to_tensor(frame: np.ndarray, size: int, mean: Sequence[float] | float, std: Sequence[float] | float,
              train: bool = False, rng: np.random.Generator | None = None, *, crop_scale=(0.85, 1.0),
              max_degrees: float = 5.0, jitter: float = 0.1):
    """(3, size, size) float32 tensor of a uint8 frame: resize (area), then, when `train`, a random
    resized crop (scale near 1), a small rotation and brightness/contrast jitter; then normalise."""
    import torch

    if frame.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale frame, got shape {frame.shape}")
    h, w = frame.shape
    img = frame if (h, w) == (size, size) else cv2.resize(
        frame, (size, size), interpolation=cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR)
    img = img.astype(np.float32) / 255.0
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        m = _augment_matrix(size, rng, crop_scale, max_degrees)
        img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0.0)
        contrast, brightness = rng.uniform(1 - jitter, 1 + jitter), rng.uniform(-jitter, jitter)
        img = np.clip((img - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0)
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float32), (3,)).reshape(3, 1, 1)
    std = np.broadcast_to(np.asarray(std, dtype=np.float32), (3,)).reshape(3, 1, 1)
    out = (np.repeat(img[None], 3, axis=0) - mean) / std  # grayscale -> the 3 channels towers take
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
