"""The encoder, baselines and embed stages on the session's pipeline outputs (tiny sizes)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.encoder.embed import embed
from components.encoder.training import train_baselines, train_encoder


def test_train_writes_a_loadable_encoder_with_metrics(encoder_dir, small_params):
    from components.encoder.text_encoder import TextEncoder

    encoder = TextEncoder.load(encoder_dir)
    vectors = encoder.encode(["No pneumothorax.", "Small left pleural effusion."])
    assert vectors.shape[0] == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert encoder.bidirectional and encoder.config.instruction
    metrics = json.loads((encoder_dir.parent / "metrics" / "encoder.json").read_text())
    assert metrics["pretrained_here"] and all(v is not None for v in metrics["final_loss"].values())
    assert set(metrics["r_at_1_after"]) == {"train", "val"} and len(metrics) <= 5  # headline figures only
    lines = [json.loads(x) for x in (encoder_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == list(range(1, small_params.encoder.contrastive.loop.steps + 1))


def test_embed_covers_reports_and_accepted_variants_and_caches(encoder_dir, small_params, tmp_path):
    cfg = small_params.embed.model_copy(update={"out": str(tmp_path / "emb"), "metrics": str(tmp_path / "m.json"),
                                                "cache": str(tmp_path / "cache")})
    first = embed(cfg)
    reports = pd.read_parquet(tmp_path / "emb" / "reports.parquet")
    variants = pd.read_parquet(tmp_path / "emb" / "variants.parquet")
    r, v = np.load(tmp_path / "emb" / "reports.npy"), np.load(tmp_path / "emb" / "variants.npy")
    accepted = pd.read_parquet(small_params.variants.out + "/variants.parquet").query("valid")
    assert len(reports) == len(r) and len(variants) == len(v) == len(accepted)
    assert r.dtype == np.float32 and np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-5)
    assert first["encoded"] > 0 and first["from_cache"] < first["reports"] + first["variants"]
    again = embed(cfg)
    assert again["encoded"] == 0 and again["encoder_hash"] == first["encoder_hash"]
    assert np.array_equal(np.load(tmp_path / "emb" / "reports.npy"), r)


def test_missing_inputs_are_clear_errors(small_params, tmp_path):
    with pytest.raises(FileNotFoundError, match="cxr clean"):
        train_encoder(small_params.encoder.model_copy(update={"clean": str(tmp_path / "nowhere")}))
    with pytest.raises(FileNotFoundError, match="cxr encoder"):
        embed(small_params.embed.model_copy(update={"encoder": str(tmp_path / "nowhere")}))


def test_bert_baseline_matches_the_llm_budget_and_loads(small_params, variants_dir):
    from components.encoder.text_encoder import TextEncoder

    summary = train_baselines(small_params.baselines, small_params.encoder)
    enc = small_params.encoder
    assert summary["mlm_steps"] == enc.pretrain.loop.steps + enc.mntp.loop.steps
    encoder = TextEncoder.load(small_params.baselines.out)
    assert encoder.config.family == "bert" and encoder.backbone.config.hidden_size == enc.pretrain.size.hidden
    assert encoder.encode(["No pneumothorax."]).shape[0] == 1
