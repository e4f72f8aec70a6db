"""Step 0 of the demo: a byte-level BPE tokenizer and a small Llama trained from scratch on the reports.

No model is downloaded: the demo's decoder LM is this one. Real deployments skip this step and point
the MNTP step at a local checkpoint directory instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from components.training import loop as train_loop
from components.encoder.data import text_digest
from components.params import LMSize, PretrainConfig

log = logging.getLogger(__name__)

# bos/eos frame every text; pad fills batches; unk is never produced by byte-level BPE but HF code
# expects one; <mask> is MNTP's mask token (registered here so the MNTP step needs no vocab resize).
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                  "mask_token": "<mask>"}


def train_tokenizer(texts: list[str], vocab_size: int, out: str | Path | None = None):
    """Byte-level BPE on `texts` -> PreTrainedTokenizerFast that adds <s> ... </s> around each text;
    saved with save_pretrained when `out` is given."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(SPECIAL_TOKENS.values())
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos, eos = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.padding_side = "right"  # training; the TextEncoder pads left at encode time
    if out is not None:
        fast.save_pretrained(str(out))
    return fast


def build_lm(size: LMSize, tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, num_key_value_heads=size.kv_heads, intermediate_size=size.intermediate,
        max_position_embeddings=size.max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def batch_tokens(tokenizer, texts: list[str], max_length: int, device) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}


def pretrain_lm(cfg: PretrainConfig, texts: list[str], out: str | Path) -> Path:
    """Tokenizer + causal Llama trained with next-token prediction on `texts`; writes `out` (HF format,
    safetensors, tokenizer, metrics.jsonl, train_summary.json) atomically; resumes a killed run."""
    d = train_loop.init_distributed(cfg.loop.device)
    work = train_loop.work_dir_for(out)
    tokenizer = train_tokenizer(texts, cfg.vocab_size)  # deterministic: every rank builds the same one
    model = build_lm(cfg.size, tokenizer, cfg.loop.seed)
    log.info("pretraining a %.2fM-parameter Llama on %d texts", sum(p.numel() for p in model.parameters()) / 1e6,
             len(texts))

    def step(net, idx, _step):
        batch = batch_tokens(tokenizer, [texts[i] for i in idx], cfg.max_length, d.device)
        logits = net(**batch, use_cache=False).logits[:, :-1].float()
        labels = batch["input_ids"][:, 1:].masked_fill(batch["attention_mask"][:, 1:] == 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100), {}

    run_key = {"cfg": cfg.model_dump(mode="json"), "texts": text_digest(texts)}
    summary = train_loop.train(model, step, len(texts), cfg.loop, work, d, run_key)

    def save(tmp: Path):
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    return train_loop.finish(out, work, save, summary, d)


def run_pretrain(cfg: PretrainConfig, clean_dir: str | Path, out: str | Path) -> Path:
    """The stage: pretrain on the train split of the clean reports."""
    from components.encoder.data import load_corpus

    return pretrain_lm(cfg, load_corpus(clean_dir), out)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m components.encoder.pretrain --config c.json ...
    train_loop.stage_main(run_pretrain, PretrainConfig)
