"""Step 1 of LLM2Vec: masked next-token prediction (MNTP) with bidirectional attention and LoRA.

The decoder is made to attend both ways, a fraction of the input tokens is masked, and the token at a
masked position i is predicted from the output at position i-1 (the decoder's usual "next token" head,
now seeing the whole text). This teaches the model to use future context before contrastive training.

Mask token, in this order (LLM2Vec's run_mntp.py practice): the tokenizer's own mask token (our
pretrained tokenizer registers "<mask>"); else "_" when it is one token (LLM2Vec's default "blank" for
Llama/Mistral); else unk; else eos. Adding a new token would need a new, untrained embedding row that
LoRA cannot train, so we never add one here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from components.training import loop as train_loop
from components.encoder.data import text_digest
from components.encoder.bidirectional import bidirectional_mask, make_bidirectional, position_ids_from_mask
from components.params import MNTPConfig

log = logging.getLogger(__name__)

def mask_token_id(tokenizer) -> int:
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id
    blank = tokenizer.convert_tokens_to_ids("_")
    if isinstance(blank, int) and blank != tokenizer.unk_token_id:
        return blank
    for tid in (tokenizer.unk_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return tid
    raise ValueError("the tokenizer has no mask, '_', unk or eos token to mask with")


def mask_tokens(input_ids: torch.Tensor, maskable: torch.Tensor, cfg: MNTPConfig, mask_id: int,
                vocab_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input_ids, labels): labels hold the original id at selected positions, -100 elsewhere.
    At least one token per text is selected so no row is without signal."""
    prob = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    prob = prob.masked_fill(~maskable, 2.0)
    selected = (prob < cfg.mask_rate) & maskable
    lowest = prob.argmin(1, keepdim=True)  # the one guaranteed pick per row (if it has any maskable token)
    selected |= torch.zeros_like(selected).scatter(1, lowest, True) & maskable
    action = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator).to(input_ids.device)
    masked = input_ids.clone()
    to_mask = selected & (action < cfg.replace_with_mask)
    to_random = selected & (action >= cfg.replace_with_mask) & (action < (1 + cfg.replace_with_mask) / 2)
    masked[to_mask] = mask_id
    masked[to_random] = random_ids[to_random]
    return masked, input_ids.masked_fill(~selected, -100)


def mntp_loss(net, batch: dict, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the token at masked position i against the logits at position i-1."""
    am = batch["attention_mask"]
    dtype = next(p.dtype for p in net.parameters() if p.is_floating_point())
    if torch.is_autocast_enabled(am.device.type):
        dtype = torch.get_autocast_dtype(am.device.type)
    logits = net(input_ids=batch["input_ids"], attention_mask=bidirectional_mask(am, dtype),
                 position_ids=position_ids_from_mask(am), use_cache=False).logits
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def train_mntp(cfg: MNTPConfig, texts: list[str], model_dir: str | Path, out: str | Path) -> Path:
    """MNTP-train the causal LM in `model_dir` on `texts`; LoRA is merged and the plain causal LM (HF
    format, safetensors) + tokenizer are written to `out` atomically. Resumes a killed run."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = train_loop.init_distributed(cfg.loop.device)
    work = train_loop.work_dir_for(out)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    make_bidirectional(model)
    train_loop.seed_everything(cfg.loop.seed)  # LoRA init
    model = get_peft_model(model, cfg.lora.peft_config("CAUSAL_LM"))
    mask_id, specials = mask_token_id(tokenizer), torch.tensor(tokenizer.all_special_ids)
    log.info("MNTP on %d texts, mask token %r", len(texts), tokenizer.convert_ids_to_tokens(mask_id))

    def step(net, idx, step_no):
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=cfg.max_length,
                        return_tensors="pt")
        maskable = enc["attention_mask"].bool() & ~torch.isin(enc["input_ids"], specials)
        maskable[:, 0] = False  # position 0 has no predecessor to predict it from
        gen = torch.Generator().manual_seed(cfg.loop.seed * 1_000_003 + step_no * 1009 + d.rank)
        ids, labels = mask_tokens(enc["input_ids"], maskable, cfg, mask_id, len(tokenizer), gen)
        batch = {"input_ids": ids.to(d.device), "attention_mask": enc["attention_mask"].to(d.device)}
        return mntp_loss(net, batch, labels.to(d.device)), {"masked": int((labels != -100).sum())}

    run_key = {"cfg": cfg.model_dump(mode="json"), "texts": text_digest(texts), "model": str(Path(model_dir).resolve())}
    summary = train_loop.train(model, step, len(texts), cfg.loop, work, d, run_key)

    def save(tmp: Path):
        merged = model.merge_and_unload()
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    return train_loop.finish(out, work, save, summary, d)


def run_mntp(cfg: MNTPConfig, clean_dir: str | Path, model_dir: str | Path, out: str | Path) -> Path:
    """The stage: MNTP on the train split of the clean reports."""
    from components.encoder.data import load_corpus

    return train_mntp(cfg, load_corpus(clean_dir), model_dir, out)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m components.encoder.mntp --config c.json ...
    train_loop.stage_main(run_mntp, MNTPConfig)
