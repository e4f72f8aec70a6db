"""The 14 CheXpert observations and their label values, shared by every stage."""

OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
# A blank (not mentioned) label is stored as NaN / None, as in CheXpert's CSVs.
LABEL_VALUES = (POSITIVE, NEGATIVE, UNCERTAIN)

# Observations whose positive or uncertain mention rules out "No Finding" (all but devices).
PATHOLOGIES = tuple(o for o in OBSERVATIONS if o not in ("No Finding", "Support Devices"))

# A dataset's own reference labels (radiologists' or another labeler's), carried from ingest to clean
# next to ours: reference_source names the file, one column per observation.
REFERENCE_COLUMNS: tuple[str, ...] = tuple(f"reference_{o}" for o in OBSERVATIONS)
