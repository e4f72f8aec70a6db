"""Radiographic view of an image: one table for every ViewPosition value real exports carry.

Sources disagree on spelling (MIMIC-CXR metadata: "AP AXIAL", "PA LLD", "XTABLE LATERAL"; DICOM
defined terms: "LL", "RLD", "LLO"; CheXpert Plus: frontal_lateral + ap_pa), so every value is reduced
to a canonical name and a class: frontal, lateral or other (oblique and special projections).
A blank ViewPosition falls back to the DICOM ViewCodeSequence meaning, then to unknown (None).
"""

from __future__ import annotations

import math

FRONTAL, LATERAL, OTHER = "frontal", "lateral", "other"

# Canonical name -> class. A lateral decubitus film is a horizontal-beam AP or PA projection with the
# patient on one side, so decubitus views (bare or with AP/PA) are frontal, not lateral.
# FRONTAL: a source that says frontal without AP or PA (CheXpert Plus with a blank ap_pa).
VIEW_CLASS: dict[str, str] = {
    "PA": FRONTAL, "AP": FRONTAL, "AP AXIAL": FRONTAL, "PA AXIAL": FRONTAL, "AP LORDOTIC": FRONTAL,
    "AP LLD": FRONTAL, "AP RLD": FRONTAL, "PA LLD": FRONTAL, "PA RLD": FRONTAL, "LLD": FRONTAL, "RLD": FRONTAL,
    "FRONTAL": FRONTAL,
    "LATERAL": LATERAL, "XTABLE LATERAL": LATERAL, "SWIMMERS": LATERAL,
    "LAO": OTHER, "RAO": OTHER, "LPO": OTHER, "RPO": OTHER, "LLO": OTHER, "RLO": OTHER, "OBLIQUE": OTHER,
}
# Other spellings seen in exports -> canonical name.
# Which side faced the detector matters little here, so LL / RL read as LATERAL.
ALIASES = {"LAT": "LATERAL", "LL": "LATERAL", "RL": "LATERAL", "LEFT LATERAL": "LATERAL",
           "RIGHT LATERAL": "LATERAL", "X-TABLE LATERAL": "XTABLE LATERAL",
           "CROSS-TABLE LATERAL": "XTABLE LATERAL", "POSTERO-ANTERIOR": "PA", "ANTERO-POSTERIOR": "AP",
           "POSTEROANTERIOR": "PA", "ANTEROPOSTERIOR": "AP", "LORDOTIC": "AP LORDOTIC"}
# ViewCodeSequence CodeMeaning (DICOM CID 4010 / 4012, lower case) -> canonical name.
CODE_MEANINGS = {
    "postero-anterior": "PA", "antero-posterior": "AP", "lateral": "LATERAL", "left lateral": "LATERAL",
    "right lateral": "LATERAL", "left lateral decubitus": "LLD", "right lateral decubitus": "RLD",
    "antero-posterior axial": "AP AXIAL", "lordotic": "AP LORDOTIC", "left anterior oblique": "LAO",
    "right anterior oblique": "RAO", "left posterior oblique": "LPO", "right posterior oblique": "RPO",
    "oblique": "OBLIQUE", "left oblique": "LLO", "right oblique": "RLO",
}


def normalise_view(view) -> str | None:
    """Canonical view name; None for blank. Unknown spellings are kept (upper case) and classed other."""
    if view is None or (isinstance(view, float) and math.isnan(view)):
        return None
    text = " ".join(str(view).replace("_", " ").split()).upper()
    return ALIASES.get(text, text) or None


def from_code_meaning(meaning) -> str | None:
    return CODE_MEANINGS.get(" ".join(str(meaning or "").split()).lower())


def view_class(view: str | None) -> str | None:
    """frontal / lateral / other for a canonical name, or None when the view is unknown."""
    return None if view is None else VIEW_CLASS.get(view, OTHER)


def header_view(ds) -> str | None:
    """View of a pydicom dataset: ViewPosition, else the first ViewCodeSequence item's meaning."""
    view = normalise_view(ds.get("ViewPosition"))
    if view:
        return view
    seq = ds.get("ViewCodeSequence")
    if seq:
        return from_code_meaning(seq[0].get("CodeMeaning"))
    return None


def dicom_view(path) -> str | None:
    """View from a DICOM file's header alone (no pixel data read); None when unreadable or absent."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ViewPosition", "ViewCodeSequence"])
    except Exception:  # noqa: BLE001 - a broken file is the decoder's to report; here it has no view
        return None
    return header_view(ds)
