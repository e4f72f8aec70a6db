"""Evaluation metrics against values computed by hand on tiny matrices, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from components.chexpert import OBSERVATIONS
from components.evaluation import clinical, retrieval, zero_shot
from components.evaluation.stats import bootstrap_ci, mean_ci, overlaps

# Query 0 is a clean hit; query 1 ties with the whole gallery; query 2 has one better item and one tie.
SIM = np.array([[0.9, 0.1, 0.5],
                [0.2, 0.2, 0.2],
                [0.3, 0.8, 0.3]])
TARGET = [0, 1, 2]
GALLERY_POS = np.array([[1, 0], [0, 1], [1, 0]], bool)
QUERY_POS = np.array([[1, 0], [0, 0], [0, 1]], bool)


def test_ranks_and_recall_are_tie_aware():
    better, tied, tied_relevant = retrieval.rank_counts(SIM, TARGET)
    assert better.tolist() == [0, 0, 1] and tied.tolist() == [0, 2, 1] and tied_relevant.tolist() == [1, 1, 1]
    assert retrieval.expected_ranks(SIM, TARGET).tolist() == [1.0, 2.0, 2.5]
    assert retrieval.hit_at_k(SIM, TARGET, 1) == pytest.approx([1, 1 / 3, 0])
    assert retrieval.hit_at_k(SIM, TARGET, 2) == pytest.approx([1, 2 / 3, 0.5])
    m = retrieval.recall_metrics(SIM, TARGET, ks=(1, 2, 5))
    assert m["r_at_1"] == pytest.approx(4 / 9) and m["r_at_2"] == pytest.approx(13 / 18) and m["r_at_5"] == 1.0
    assert m["median_rank"] == 2.0 and m["mean_rank"] == pytest.approx(5.5 / 3)
    assert (m["gallery"], m["n_queries"], m["chance_r_at_1"], m["chance_r_at_5"]) == (3, 3, pytest.approx(1 / 3), 1.0)
    assert m["chance_median_rank"] == 2.0


def test_a_constant_scorer_scores_exactly_chance():
    sim = np.zeros((6, 6))
    m = retrieval.recall_metrics(sim, range(6), ks=(1, 5))
    assert m["r_at_1"] == pytest.approx(1 / 6) and m["r_at_5"] == pytest.approx(5 / 6)
    assert m["median_rank"] == pytest.approx(3.5)


def test_several_relevant_items():
    # Query 0: relevant items 0 and 2 (identical reports) tie at the top with item 1: the first relevant
    # is at rank 1 with probability 2/3; expected irrelevant items in front = 1 / (2 + 1).
    sim = np.array([[0.5, 0.5, 0.5, 0.1], [0.9, 0.2, 0.2, 0.2]])
    mask = np.array([[1, 0, 1, 0], [0, 1, 1, 0]], bool)
    assert retrieval.hit_at_k(sim, mask, 1) == pytest.approx([2 / 3, 0])
    # query 1: one better item, then 3 tied of which 2 relevant: P(relevant at rank 2) = 2/3, rank 3: 1
    assert retrieval.hit_at_k(sim, mask, 2) == pytest.approx([1, 2 / 3])
    assert retrieval.expected_ranks(sim, mask) == pytest.approx([1 + 1 / 3, 2 + 1 / 3])
    m = retrieval.recall_metrics(sim, mask, ks=(1,))
    assert m["chance_r_at_1"] == pytest.approx(0.5)  # 2 relevant of 4 for both queries
    with pytest.raises(ValueError, match="no relevant"):
        retrieval.recall_metrics(sim, np.zeros((2, 4), bool))


def test_topk_weights_share_the_boundary_tie():
    assert retrieval.topk_weights(SIM, 1) == pytest.approx(np.array([[1, 0, 0], [1 / 3] * 3, [0, 1, 0]]))
    assert retrieval.topk_weights(SIM, 2) == pytest.approx(np.array([[1, 0, 1], [2 / 3] * 3, [0.5, 1, 0.5]]))
    assert retrieval.topk_weights(SIM, 10).sum(1) == pytest.approx([3, 3, 3])


def test_label_hit_rate_and_precision_at_k():
    hit = retrieval.label_hit_rate(SIM, QUERY_POS, GALLERY_POS)
    assert hit["label_hit_at_1"] == pytest.approx(2 / 3) and hit["chance_label_hit_at_1"] == pytest.approx(1 / 3)
    p = retrieval.precision_at_k(SIM, QUERY_POS, GALLERY_POS, ["a", "b"], k=2)
    assert p["a"] == {"precision": 1.0, "n_queries": 1, "chance": pytest.approx(2 / 3), "k": 2}
    assert p["b"]["precision"] == pytest.approx(0.5) and p["b"]["chance"] == pytest.approx(1 / 3)


def test_bad_retrieval_input_is_a_clear_error():
    with pytest.raises(ValueError, match="one target per query"):
        retrieval.recall_metrics(SIM, [0, 1])
    with pytest.raises(ValueError, match="outside the gallery"):
        retrieval.recall_metrics(SIM, [0, 1, 3])
    with pytest.raises(ValueError, match="NaN"):
        retrieval.recall_metrics(np.full((1, 2), np.nan), [0])


def _embed(columns: dict[str, int], pos: np.ndarray) -> np.ndarray:
    out = np.zeros((len(pos), len(OBSERVATIONS)), bool)
    for j, name in enumerate(columns):
        out[:, OBSERVATIONS.index(name)] = pos[:, j]
    return out


def test_clinical_f1_of_the_top1_report():
    tp, fp, fn = clinical.f1_counts(retrieval.topk_weights(SIM, 1) @ GALLERY_POS, QUERY_POS)
    assert tp == pytest.approx([1, 1]) and fp == pytest.approx([2 / 3, 1 / 3]) and fn == pytest.approx([0, 0])
    cols = {"Cardiomegaly": 0, "Edema": 1}
    f1 = clinical.retrieved_f1(SIM, _embed(cols, QUERY_POS), _embed(cols, GALLERY_POS), resamples=50)
    for subset in ("all", "competition"):
        assert f1[subset]["micro_f1"] == pytest.approx(0.8)
        assert f1[subset]["macro_f1"] == pytest.approx((0.75 + 6 / 7) / 2)
        assert f1[subset]["per_observation"]["Edema"] == pytest.approx(6 / 7)
    assert "Pneumonia" in f1["all"]["undefined"] and len(f1["competition"]["undefined"]) == 3


def test_auroc_with_ties_and_uncertain_labels_left_out():
    assert zero_shot.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert zero_shot.auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert zero_shot.auroc([0.1, 0.2], [1, 1]) is None
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 30, (20, 30))
    scores, truth, usable = rng.integers(0, 5, 30) / 4, (rng.random(30) < 0.4).astype(int), rng.random(30) < 0.8
    fast = zero_shot.auroc_draws(scores, truth, usable, idx)  # the bootstrap's vectorised AUROC, ties included
    for row, value in zip(idx, fast):
        sel = row[usable[row]]
        assert value == pytest.approx(zero_shot.auroc(scores[sel], truth[sel]))
    assert np.isnan(zero_shot.auroc_draws(scores, np.zeros(30), usable, idx)).all()
    probs = {"Edema": np.array([0.1, 0.4, 0.99, 0.35, 0.8, 0.3]), "Fracture": np.array([0.5] * 6)}
    labels = {"Edema": np.array([0, np.nan, -1, 1, 1, 0]), "Fracture": np.array([0, 0, 0, 0, 0, np.nan])}
    t = zero_shot.auroc_table(probs, labels, resamples=200)
    e = t["per_observation"]["Edema"]
    # blank counts as negative: negatives {0.1, 0.4, 0.3}, positives {0.35, 0.8}; 0.99 is uncertain
    assert e["auroc"] == pytest.approx(5 / 6) and e["n_uncertain_excluded"] == 1
    assert (e["n_positive"], e["n_negative"]) == (2, 3)
    assert t["undefined"] == ["Fracture"] and t["macro_auroc"] == pytest.approx(5 / 6)


class _TableModel:
    """A text tower given by a table of unit vectors (the formula under test is everything after it)."""

    logit_scale = 10.0

    def __init__(self, table):
        self.table = table

    def encode_text(self, texts, section="full"):
        return np.array([self.table[t] for t in texts], dtype=np.float32)

    def similarity(self, image_vecs, text_vecs):
        return self.logit_scale * image_vecs @ text_vecs.T


def test_zero_shot_probability_averages_templates_then_softmaxes():
    e1, e2 = np.eye(2)
    model = _TableModel({"p1": e1, "p2": e2, "n1": e2})
    prompts = {"Edema": {"positive": ["p1", "p2"], "negative": ["n1"]}}
    p = zero_shot.zero_shot_probabilities(model, np.array([e1, e2]), ["Edema"], prompts=prompts)["Edema"]
    pos = 10 * np.array([1, 1]) / np.sqrt(2)  # image . normalised mean of e1 and e2
    neg = 10 * np.array([0, 1])
    assert p == pytest.approx(1 / (1 + np.exp(neg - pos)), rel=1e-5)
    with pytest.raises(ValueError, match="unknown observations"):
        zero_shot.zero_shot_probabilities(model, np.array([e1]), ["Edemaa"], prompts=prompts)


def test_prompt_file_covers_every_observation():
    prompts = zero_shot.load_prompts()
    assert set(prompts) == set(zero_shot.OBSERVATIONS)
    assert all(len(p["positive"]) >= 2 and len(p["negative"]) >= 2 for p in prompts.values())


def test_bootstrap_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (40, 400, 4000):
        hits = rng.random(n) < 0.7
        m = mean_ci(hits, resamples=400, seed=2)
        lo, hi = m["ci"]
        assert lo <= m["value"] <= hi and m["n"] == n
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] / widths[2] > 5  # ~ sqrt(100) = 10
    assert bootstrap_ci(lambda i: None, 10) is None and mean_ci([])["ci"] is None
    assert overlaps((0, 1), (0.5, 2)) and not overlaps((0, 1), (1.5, 2)) and overlaps(None, (0, 1)) is None
