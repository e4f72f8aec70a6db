"""Write a rendered radiograph as a real DICOM file, with the encodings real archives use.

Each file draws its encoding from the rng: DX or CR, 12 to 16 bits stored, MONOCHROME1 or
MONOCHROME2, a rescale slope/intercept (modality LUT) and a window that frames the anatomy, so the
ingest decoder is exercised on every path it must handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
DICOM_VIEW = {"PA": "PA", "AP": "AP", "LATERAL": "LL"}

# PS3.15 identifying attributes planted by the header-PHI trap (left empty in clean files).
IDENTIFYING_VALUES = {
    "PatientName": "Holloway^Jane^M",
    "PatientBirthDate": "19570314",
    "InstitutionName": "St. Agnes General Hospital",
    "ReferringPhysicianName": "Okafor^Daniel^^Dr.",
    "AccessionNumber": "A4829103",
    "OtherPatientIDs": "MRN-00482910",
}


@dataclass(frozen=True)
class DicomIds:
    """Ids that tie a file to its study; UIDs derive from them so output is byte-identical per seed."""

    subject_id: int
    study_id: int
    dicom_id: str
    view: str  # PA | AP | LATERAL


def encode(image: np.ndarray, ids: DicomIds, rng: np.random.Generator, *, monochrome1_rate: float,
           pixel_spacing_mm: float, identifying: bool = False, burned_in: bool = False) -> Dataset:
    """Encode a [0, 1] display-brightness image (MONOCHROME2 sense) as a DICOM dataset."""
    bits = int(rng.choice([12, 14, 16]))
    slope = float(rng.choice([1.0, 0.5, 2.0]))
    intercept = float(rng.choice([0.0, -1024.0, 100.0]))
    monochrome1 = bool(rng.random() < monochrome1_rate)
    modality = "DX" if rng.random() < 0.6 else "CR"

    top = 2**bits - 1
    lo, hi = rng.uniform(0.02, 0.15) * top, rng.uniform(0.80, 0.97) * top  # detector headroom
    brightness = 1.0 - image if monochrome1 else image  # MONOCHROME1: high values display dark
    stored = np.clip(np.rint(lo + brightness * (hi - lo)), 0, top).astype(np.uint16)

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DX_STORAGE if modality == "DX" else CR_STORAGE
    uid_of = lambda *parts: generate_uid(entropy_srcs=[str(p) for p in parts])  # noqa: E731
    ds.file_meta.MediaStorageSOPInstanceUID = uid_of("sop", ids.dicom_id)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid_of("study", ids.study_id)
    ds.SeriesInstanceUID = uid_of("series", ids.study_id, ids.view)
    ds.Modality = modality
    ds.ViewPosition = DICOM_VIEW[ids.view]
    ds.BodyPartExamined = "CHEST"
    ds.PatientID = str(ids.subject_id)  # pseudonymous subject id, as in MIMIC-CXR
    for keyword in IDENTIFYING_VALUES:
        setattr(ds, keyword, IDENTIFYING_VALUES[keyword] if identifying else "")
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.PatientOrientation = ["A", "R"] if ids.view == "LATERAL" else ["L", "F"]

    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    spacing = f"{pixel_spacing_mm:.4f}"
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    ds.RescaleType = "US"
    # Window in modality units over the body (not the full detector range), as a modality would set it.
    f_lo, f_hi = (0.02, 0.95) if monochrome1 else (0.05, 0.98)  # mirrored: MONOCHROME1 stores bright low
    w_lo, w_hi = (lo + f_lo * (hi - lo)) * slope + intercept, (lo + f_hi * (hi - lo)) * slope + intercept
    ds.WindowCenter, ds.WindowWidth = f"{(w_lo + w_hi) / 2:.1f}", f"{w_hi - w_lo:.1f}"
    ds.PixelData = stored.tobytes()
    return ds


def write(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
