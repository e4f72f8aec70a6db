"""The encoder model on tiny random backbones: bidirectional attention per family and attention
implementation, pooling, tokenization, save/load (own and released layout), encode's contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from components.encoder.bidirectional import bidirectional_mask, make_bidirectional, run_backbone
from components.encoder.config import CONFIG_NAME, EncoderConfig
from components.encoder.pooling import LatentAttentionPooler, pool
from components.encoder.text_encoder import TextEncoder
from tests.encoder_fixtures import FAMILY_MODELS, build_tokenizer, tiny_model

CASES = [(family, attn) for family in FAMILY_MODELS for attn in ("eager", "sdpa")]
LATENT = {"num_latents": 8, "heads": 2, "ff_mult": 2}
TEXTS = ["No acute cardiopulmonary process.",
         "Mild cardiomegaly with small bilateral pleural effusions. Right lower lobe opacity concerning for pneumonia.",
         "Left basilar atelectasis.",
         "Endotracheal tube terminates 4 cm above the carina. Lines and tubes unchanged.",
         "Heart size is normal.",
         "Stable appearance of the chest."]


def states(model, ids, mask, bidirectional):
    with torch.no_grad():
        return run_backbone(model, ids, mask, bidirectional)


# ---- bidirectionality table --------------------------------------------------------------------------

@pytest.mark.parametrize("family,attn", CASES)
def test_later_token_changes_earlier_state_only_when_bidirectional(family, attn):
    model = tiny_model(family, attn)
    ids = torch.randint(5, 300, (2, 8))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 300
    full = torch.ones_like(ids)  # an unpadded batch: the case where a None mask would fall back to causal
    causal_a, causal_b = states(model, ids, full, False), states(model, changed, full, False)
    assert torch.allclose(causal_a[:, :-1], causal_b[:, :-1], atol=1e-6)  # causal baseline: the past is blind
    make_bidirectional(model)
    bi_a, bi_b = states(model, ids, full, True), states(model, changed, full, True)
    assert (bi_a[:, 0] - bi_b[:, 0]).abs().max() > 1e-4  # the first token now sees the last


@pytest.mark.parametrize("family,attn", CASES)
def test_padding_never_reaches_real_tokens(family, attn):
    model = make_bidirectional(tiny_model(family, attn))
    real = torch.randint(5, 300, (6,))
    reference = states(model, real[None], torch.ones(1, 6, dtype=torch.long), True)[0]
    for pad_len, pad_id in [(3, 0), (3, 7), (5, 123)]:
        ids = torch.cat([torch.full((pad_len,), pad_id), real])[None]
        mask = torch.cat([torch.zeros(pad_len, dtype=torch.long), torch.ones(6, dtype=torch.long)])[None]
        out = states(model, ids, mask, True)[0]
        assert torch.isfinite(out).all()  # padded query rows attend to themselves: no NaN
        assert torch.allclose(out[pad_len:], reference, atol=1e-5)


def test_bidirectional_mask_values():
    mask = bidirectional_mask(torch.tensor([[0, 1, 1]]), torch.float32)
    assert mask.shape == (1, 1, 3, 3) and mask.dtype == torch.float32
    neg = torch.finfo(torch.float32).min
    # real queries never see the padding key; the padding query sees the real keys and itself (no empty row)
    assert mask[0, 0].tolist() == [[0, 0, 0], [neg, 0, 0], [neg, 0, 0]]


def test_run_backbone_on_causal_lm_matches_its_base_model():
    from transformers import LlamaForCausalLM
    base = make_bidirectional(tiny_model("llama"))
    lm = make_bidirectional(LlamaForCausalLM(base.config).eval())
    lm.model.load_state_dict(base.state_dict())
    ids, mask = torch.randint(5, 300, (2, 7)), torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7])
    assert torch.allclose(states(lm, ids, mask, True), states(base, ids, mask, True), atol=1e-6)


def test_make_bidirectional_refuses_models_without_attention_flags():
    with pytest.raises(ValueError):
        make_bidirectional(torch.nn.Linear(2, 2))


# ---- pooling -------------------------------------------------------------------------------------

def test_pool_modes_and_mask_exclusion():
    torch.manual_seed(0)
    hidden = torch.randn(2, 5, 16)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.allclose(pool(hidden, mask, "mean")[0], hidden[0, 2:].mean(0))
    assert torch.allclose(pool(hidden, mask, "last")[1], hidden[1, 2])  # from the mask, not position T-1
    latent = LatentAttentionPooler(16, **LATENT)
    assert latent(hidden, mask).shape == (2, 16)
    other = hidden.clone()
    other[:, :2] = torch.randn(2, 2, 16)  # change only the excluded (instruction) positions of row 0
    for fn in (lambda h: pool(h, mask, "mean"), lambda h: pool(h, mask, "last"), lambda h: latent(h, mask)):
        assert torch.allclose(fn(hidden)[0], fn(other)[0], atol=1e-6)


# ---- TextEncoder ---------------------------------------------------------------------------------

def make_encoder(pooling="mean", max_length=64, **config):
    cfg = EncoderConfig(pooling=pooling, max_length=max_length, latent=dict(LATENT), **config)
    return TextEncoder.from_backbone(tiny_model("llama"), cfg, tokenizer=build_tokenizer(pad=False))


def test_tokenize_left_pads_and_excludes_instruction():
    enc = make_encoder(max_length=128)  # nothing truncated here
    assert enc.tokenizer.pad_token == enc.tokenizer.eos_token  # decoder LM without a pad token
    batch = enc.tokenize(TEXTS[:3], instruction="Retrieve the report")
    ids, att, pm = batch["input_ids"], batch["attention_mask"], batch["pool_mask"]
    assert att[:, -1].all() and not att[0, 0]  # left padding
    assert not (pm & ~att.bool()).any()
    n_prefix = len(enc.tokenizer("Retrieve the report:", add_special_tokens=False)["input_ids"])
    n_text = [len(enc.tokenizer(f" {t}", add_special_tokens=False)["input_ids"]) for t in TEXTS[:3]]
    assert pm.sum(1).tolist() == n_text  # exactly the text's tokens are pooled
    assert (att.sum(1) - pm.sum(1) == 1 + n_prefix).all()  # BOS + instruction are context only
    plain = enc.tokenize(TEXTS[:3], instruction="")
    assert (plain["attention_mask"].sum(1) - plain["pool_mask"].sum(1) == 1).all()  # BOS only
    text = enc.tokenizer.decode(ids[0][att[0].bool()], skip_special_tokens=True)
    assert text == f"Retrieve the report: {TEXTS[0]}"


def test_truncation_keeps_instruction_and_counts():
    enc = make_encoder(max_length=20)
    batch = enc.tokenize(TEXTS, instruction="Retrieve")
    assert batch["input_ids"].shape[1] <= 20
    long = [len(enc.tokenizer(" " + t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    budget = 20 - 1 - len(enc.tokenizer("Retrieve:", add_special_tokens=False)["input_ids"])  # 1 = BOS
    assert enc.last_truncated == sum(n > budget for n in long) > 0
    kept = enc.tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True)
    assert kept.startswith("Retrieve:")
    enc.encode(TEXTS, instruction="Retrieve")
    assert enc.last_truncated == sum(n > budget for n in long)


@pytest.mark.parametrize("pooling", ["mean", "last", "latent"])
def test_encode_contract(pooling):
    enc = make_encoder(pooling)
    one = enc.encode(TEXTS, batch_size=1)
    four = enc.encode(TEXTS, batch_size=4)  # length-sorted, padded batches, rows back in input order
    assert one.dtype == np.float32 and one.shape == (len(TEXTS), 32)
    assert np.allclose(np.linalg.norm(four, axis=1), 1, atol=1e-5)
    assert np.abs(one - four).max() < 1e-5
    assert np.abs(enc.encode(TEXTS, instruction="Find the matching report") - four).max() > 1e-3
    assert not enc.training  # built for inference
    enc.train()
    enc.encode(TEXTS[:1])
    assert enc.training  # encode restores the mode it found


@pytest.mark.parametrize("pooling", ["mean", "last", "latent"])
def test_save_load_round_trip(tmp_path, pooling):
    enc = make_encoder(pooling, instruction="Represent the report")
    before, digest = enc.encode(TEXTS), enc.content_hash()
    enc.save(tmp_path / "enc")
    loaded = TextEncoder.load(tmp_path / "enc")
    assert loaded.config.pooling == pooling and loaded.config.instruction == "Represent the report"
    assert np.abs(loaded.encode(TEXTS) - before).max() < 1e-6
    assert loaded.content_hash() == digest
    with torch.no_grad():
        loaded.backbone.norm.weight[0] += 1
    assert loaded.content_hash() != digest


def test_released_layout_loads_with_latent_pooling(tmp_path):
    """A bidirectional LlamaForCausalLM-style checkpoint: "model."-prefixed backbone weights and the
    pooler's latent_attn.* tensors in one model.safetensors, no encoder_config.json."""
    backbone = tiny_model("llama")
    pooler = LatentAttentionPooler(32, num_latents=6, heads=8, head_dim=8, ff_mult=3)  # the released 8 heads
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"latent_attn.{k}": v for k, v in pooler.state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    backbone.config.architectures = ["LlamaForCausalLM"]
    backbone.config.save_pretrained(tmp_path)
    build_tokenizer(tmp_path)
    assert not (tmp_path / CONFIG_NAME).exists()
    enc = TextEncoder.load(tmp_path)
    assert enc.config.pooling == "latent" and enc.bidirectional and enc.config.family == "llama"
    assert enc.latent_attn.settings == {"num_latents": 6, "heads": 8, "head_dim": 8, "ff_mult": 3}
    assert "cross_attn.fn.to_q.weight" in pooler.state_dict()  # the released key names
    assert torch.equal(enc.latent_attn.latents, pooler.latents)
    assert torch.equal(enc.backbone.embed_tokens.weight, backbone.embed_tokens.weight)
    emb = enc.encode(TEXTS[:2])
    assert emb.shape == (2, 32) and np.isfinite(emb).all()
    enc.save(tmp_path / "again")  # our save writes the same layout back (plus encoder_config.json)
    assert json.loads((tmp_path / "again" / CONFIG_NAME).read_text())["pooling"] == "latent"
    assert np.abs(TextEncoder.load(tmp_path / "again").encode(TEXTS[:2]) - emb).max() < 1e-6


def test_bert_family_runs_native_attention():
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=128)).eval()
    enc = TextEncoder(bert, build_tokenizer(), EncoderConfig(family="bert", pooling="mean", max_length=64))
    assert not enc.bidirectional
    a, b = enc.encode(TEXTS, batch_size=1), enc.encode(TEXTS, batch_size=4)
    assert np.abs(a - b).max() < 1e-5
