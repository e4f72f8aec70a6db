"""The view table, reference label files and the labeler-agreement arithmetic, on small hand cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.chexpert import OBSERVATIONS
from components.ingest.readers import read_source
from components.ingest.references import labels_of, load_references
from components.ingest.views import FRONTAL, LATERAL, OTHER, dicom_view, normalise_view, view_class
from components.reports.agreement import positive_agreement, reference_agreement
from tests import real_layouts as L

# Every ViewPosition value in MIMIC-CXR's metadata, DICOM defined terms and other exports' spellings.
CASES = [
    ("PA", "PA", FRONTAL), ("AP", "AP", FRONTAL), ("ap", "AP", FRONTAL), ("AP AXIAL", "AP AXIAL", FRONTAL),
    ("AP LLD", "AP LLD", FRONTAL), ("AP RLD", "AP RLD", FRONTAL), ("PA LLD", "PA LLD", FRONTAL),
    ("PA RLD", "PA RLD", FRONTAL), ("LLD", "LLD", FRONTAL), ("RLD", "RLD", FRONTAL),
    ("LATERAL", "LATERAL", LATERAL), ("LL", "LATERAL", LATERAL), ("RL", "LATERAL", LATERAL),
    ("lat", "LATERAL", LATERAL), ("XTABLE LATERAL", "XTABLE LATERAL", LATERAL), ("SWIMMERS", "SWIMMERS", LATERAL),
    ("LAO", "LAO", OTHER), ("RAO", "RAO", OTHER), ("LPO", "LPO", OTHER), ("RLO", "RLO", OTHER),
    ("", None, None), ("  ", None, None), (None, None, None), (float("nan"), None, None),
    ("ABDOMEN", "ABDOMEN", OTHER),  # an unknown value is not let through as frontal
]


@pytest.mark.parametrize("raw,name,kind", CASES)
def test_view_table(raw, name, kind):
    assert normalise_view(raw) == name and view_class(name) == kind


@pytest.mark.parametrize("position,meaning,expected", [
    ("PA", "lateral", "PA"),  # ViewPosition wins
    ("", "lateral", "LATERAL"), ("", "left lateral", "LATERAL"), ("", "antero-posterior", "AP"),
    ("", "postero-anterior", "PA"), ("", "left lateral decubitus", "LLD"), ("", None, None),
])
def test_header_view_falls_back_to_view_code_sequence(tmp_path, position, meaning, expected):
    path = L.dicom(tmp_path / "x.dcm", 0, "1", position, meaning)
    assert dicom_view(path) == expected


def test_openi_views_from_the_dicom_release(tmp_path):
    studies = {s.study_id: s for s in read_source("openi", L.openi(tmp_path / "openi"))}
    views = {im.image_id: im.view for s in studies.values() for im in s.images}
    assert views == {i: "LATERAL" if i in L.OPENI_LATERAL else "PA" for i in views}
    assert all(im.path.endswith(".png") for s in studies.values() for im in s.images)  # PNG kept as image
    no_dcm = read_source("openi", L.openi(tmp_path / "png-only", dicoms=False))
    assert {im.view for s in no_dcm for im in s.images} == {None}


def test_reference_files_by_priority(tmp_path):
    root = L.mimic_jpg_release(tmp_path / "jpg")
    names = ["mimic-cxr-2.1.0-test-set-labeled", "mimic-cxr-2.0.0-chexpert"]
    refs, found = load_references(names, [root])
    assert found == {"mimic-cxr-2.1.0-test-set-labeled": 2, "mimic-cxr-2.0.0-chexpert": 6}
    labels = labels_of(refs["50771383"])  # a test-set study: the radiologists' labels win
    assert refs["50771383"][0] == names[0] and labels["Lung Opacity"] == 1.0 and labels["Edema"] == 1.0
    assert refs["50414267"][0] == names[1] and labels_of(refs["50414267"])["No Finding"] == 1.0
    assert labels_of(refs["50414267"])["Edema"] is None  # blank: not mentioned
    only, _ = load_references(names, [root], {"50414267"})  # only the studies read are kept
    assert set(only) == {"50414267"}
    refs, _ = load_references(list(reversed(names)), [root])
    assert refs["50771383"][0] == names[1]  # the order is the user's choice


def test_chexbert_json_array_or_lines(tmp_path):
    rec = {"path_to_image": "train/patient00007/study3/view1_frontal.jpg", "Edema": 1.0, "Fracture": None}
    (tmp_path / "chexbert_labels").mkdir()
    for text in (json.dumps([rec]), json.dumps(rec) + "\n"):
        (tmp_path / "chexbert_labels" / "impression_fixed.json").write_text(text)
        refs, _ = load_references(["chexbert_labels/impression_fixed"], [tmp_path])
        labels = labels_of(refs["patient00007/study3"])
        assert labels["Edema"] == 1.0 and labels["Fracture"] is None


def test_positive_agreement_arithmetic():
    ours = pd.Series([1.0, 1.0, 0.0, np.nan, -1.0, 1.0])
    ref = pd.Series([1.0, 0.0, 1.0, np.nan, 1.0, 1.0])
    # tp = 2 (rows 0, 5), fp = 1 (row 1), fn = 2 (rows 2, 4: our uncertain is not positive)
    assert positive_agreement(ours, ref) == {"precision": 0.6667, "recall": 0.5, "f1": 0.5714,
                                             "support": 4, "predicted": 3}
    assert positive_agreement(pd.Series([0.0]), pd.Series([np.nan]))["f1"] is None  # nothing to score


def test_reference_agreement_groups_by_source():
    table = pd.DataFrame({o: [1.0, 0.0, np.nan] for o in OBSERVATIONS})
    for o in OBSERVATIONS:
        table[f"reference_{o}"] = [1.0, 1.0, np.nan]
    table["reference_source"] = ["a", "b", None]
    out = reference_agreement(table)
    assert set(out) == {"a", "b"} and out["a"]["studies"] == 1
    assert out["a"]["macro_f1"] == 1.0 and out["b"]["macro_f1"] == 0.0
    assert reference_agreement(table.drop(columns="reference_source")) == {}
