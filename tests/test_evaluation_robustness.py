"""The text robustness suite on a hand-made split, with a keyword-count encoder whose similarities
can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.evaluation import robustness


class KeywordEncoder:
    """Embeds a text as its counts of a few keywords: enough to script which candidate is nearest."""

    WORDS = ("left", "right", "effusion", "pneumothorax", "small", "large", "cardiomegaly", "edema")

    def encode(self, texts, batch_size=32):
        v = np.array([[t.lower().count(w) for w in self.WORDS] for t in texts], dtype=np.float32) + 1e-3
        return v / np.linalg.norm(v, axis=1, keepdims=True)


REPORTS = [  # (study, split, text, findings, impression)
    ("s1", "test", "Small left effusion.", None, None),
    ("s2", "test", "Large right pneumothorax.", None, None),
    ("s3", "test", "Cardiomegaly with edema.", None, None),
    ("s5", "test", "FINDINGS: Large left effusion. IMPRESSION: Large effusion.", "Large left effusion.",
     "Large effusion."),
    ("s4", "train", "Small left effusion.", None, None),
]
VARIANTS = [  # (study, kind, error category, text, valid)
    ("s1", "abbreviation", None, "Sm left effusion.", True),
    ("s1", "paraphrase", None, "A small effusion on the left.", True),
    ("s1", "error", "location", "Small right effusion.", True),
    ("s1", "error", "severity", "Large left effusion.", True),
    ("s1", "error", "false_prediction", "Small left pneumothorax.", True),
    ("s1", "error", "false_prediction", "Small left edema.", False),  # rejected: never used
    ("s2", "paraphrase", None, "Cardiomegaly.", True),  # a bad paraphrase: retrieves s3
    ("s3", "paraphrase", None, "Cardiomegaly and edema.", True),
    ("s3", "error", "false_negation", "No cardiomegaly, edema.", True),  # same keywords: an exact tie
    ("s3", "style_transfer", None, "Cardiomegaly, edema.", True),
    ("s4", "abbreviation", None, "Sm left effusion.", True),
]


def write_split(root):
    (root / "clean").mkdir(parents=True)
    (root / "variants").mkdir()
    pq.write_table(pa.Table.from_pylist([{"study_id": s, "split": sp, "text": t, "findings": f, "impression": i}
                                         for s, sp, t, f, i in REPORTS]), root / "clean" / "reports.parquet")
    pq.write_table(pa.Table.from_pylist([
        {"study_id": s, "split": "train" if s == "s4" else "test", "kind": k, "error_category": c, "text": t,
         "valid": ok} for s, k, c, t, ok in VARIANTS]), root / "variants" / "variants.parquet")


def test_robustness_set_and_metrics_by_hand(tmp_path):
    write_split(tmp_path)
    rs = robustness.load_robustness_set(tmp_path / "clean", tmp_path / "variants", "test")
    assert len(rs.gallery) == 4 and rs.queries["abbreviation"] == (["Sm left effusion."], [0])
    assert rs.queries["impression_only"] == (["Large effusion."], [3])
    assert len(rs.discrimination) == 1  # only s1 has a paraphrase and >= 3 accepted errors
    anchor, original, errors, categories = rs.discrimination[0]
    assert anchor.startswith("A small") and original == "Small left effusion." and "Small left edema." not in errors
    assert sorted(categories) == ["false_prediction", "location", "severity"]
    assert len(rs.pairs) == 4

    table = robustness.robustness_table({"kw": KeywordEncoder(), "gone": {"status": "missing"}}, rs, resamples=100)
    row = table["encoders"]["kw"]
    assert row["abbreviation_r_at_1"]["value"] == 1.0
    assert row["paraphrase_r_at_1"]["value"] == pytest.approx(2 / 3) and row["paraphrase_r_at_1"]["n"] == 3
    assert row["style_transfer_r_at_1"]["value"] == 1.0 and row["impression_only_r_at_1"]["value"] == 1.0
    assert row["error_discrimination_strict"]["value"] == 1.0 and row["error_discrimination_mean_rank"]["value"] == 1.0
    assert row["error_discrimination_margin"]["value"] == pytest.approx(1 / 3, abs=2e-3)
    cats = row["by_error_category"]
    assert cats["false_negation"]["strict"] == 0.0 and cats["false_negation"]["tie_aware"]["value"] == 0.5
    assert cats["location"]["tie_aware"]["value"] == 1.0 and cats["location"]["n"] == 1
    assert table["encoders"]["gone"] == {"status": "missing"}
    assert table["chance"] == {"r_at_1": 0.25, "error_discrimination": 0.25, "error_discrimination_mean_rank": 2.5,
                               "error_pair": 0.5}
    assert table["counts"]["n_discrimination_reports"] == 1 and table["counts"]["n_error_pairs"] == 4


def test_text_only_split_without_variants(tmp_path):
    write_split(tmp_path)
    rs = robustness.load_robustness_set(tmp_path / "clean", None, "test")
    assert rs.queries["impression_only"][0] == ["Large effusion."] and not rs.discrimination
    row = robustness.robustness_table({"kw": KeywordEncoder()}, rs, resamples=10)["encoders"]["kw"]
    assert row["paraphrase_r_at_1"] == {"value": None, "ci": None, "n": 0}
    with pytest.raises(ValueError, match="no val report"):
        robustness.load_robustness_set(tmp_path / "clean", None, "val")
