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
