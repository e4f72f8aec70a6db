"""TextEncoder: backbone + tokenizer + pooling, saved as a Hugging Face directory.

Directory layout (the one the released llm2vec4cxr checkpoint uses, so save and load share it):
    config.json, model.safetensors   the backbone; latent pooler weights live in the same file as
                                     `latent_attn.*` tensors
    tokenizer files                  left padding, pad = eos when the LM has no pad token
    encoder_config.json              pooling / family / instruction (absent in the release: inferred)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from components.encoder.bidirectional import make_bidirectional, run_backbone
from components.encoder.config import CONFIG_NAME, FAMILIES, EncoderConfig
from components.encoder.pooling import LatentAttentionPooler, pool

WEIGHTS = "model.safetensors"
LATENT = "latent_attn."
log = logging.getLogger(__name__)


class TextEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, tokenizer, config: EncoderConfig, pooler: nn.Module | None = None):
        super().__init__()
        self.bidirectional = config.bidirectional and config.family != "bert"  # BERT attends both ways already
        self.backbone = make_bidirectional(backbone) if self.bidirectional else backbone
        if pooler is None and config.pooling == "latent":
            pooler = LatentAttentionPooler(backbone.config.hidden_size, **config.latent)
        if isinstance(pooler, LatentAttentionPooler):  # record every size, defaults included
            config = replace(config, latent=pooler.settings)
        self.config = config
        self.latent_attn = pooler  # the attribute name is the `latent_attn.*` prefix of the saved keys
        if tokenizer.pad_token is None:  # decoder LMs ship without one; pad ids are masked anyway
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # the last real token sits at T-1 for every row
        self.tokenizer = tokenizer
        # The special tokens the tokenizer puts around a sequence (BOS; EOS, SEP...), read off a probe
        # so any tokenizer (slow, fast, transformers 4 or 5) works; added by hand around prefix + text.
        bare, full = tokenizer("a", add_special_tokens=False)["input_ids"], tokenizer("a")["input_ids"]
        start = next(i for i in range(len(full)) if full[i:i + len(bare)] == bare)
        self._before, self._after = full[:start], full[start + len(bare):]
        self.last_truncated = 0

    # ---- construction and persistence -------------------------------------------------------------

    @classmethod
    def from_backbone(cls, path_or_model, config: EncoderConfig, tokenizer=None) -> "TextEncoder":
        """Wrap a base LM: a local HF directory (weights + tokenizer), or a model object plus `tokenizer`.
        A *ForCausalLM is reduced to its base model: an encoder needs states, not logits."""
        if isinstance(path_or_model, (str, Path)):
            model = AutoModel.from_pretrained(path_or_model, local_files_only=True)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path_or_model, local_files_only=True)
        else:
            model = path_or_model
            if model.get_output_embeddings() is not None:  # an LM head: keep the base model under it
                model = getattr(model, model.base_model_prefix, model)
            if tokenizer is None:
                raise ValueError("from_backbone(model, ...) needs the model's tokenizer")
        return cls(model, tokenizer, config).eval()  # inference by default; training calls .train()

    @classmethod
    def load(cls, path, device=None) -> "TextEncoder":
        """A directory written by `save`, or one in the released llm2vec4cxr layout (no encoder_config.json)."""
        path = Path(path)
        latent_state = _read_latent(path)
        if (path / CONFIG_NAME).exists():
            config = EncoderConfig.load(path)
        else:  # released layout: a bidirectional decoder; latent pooling exactly when its weights are there
            model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
            config = EncoderConfig(family=model_type if model_type in FAMILIES else "llama", bidirectional=True,
                                   pooling="latent" if latent_state else "mean")
            if latent_state:  # sizes from the tensors
                config.latent = LatentAttentionPooler.from_state(latent_state).settings
        backbone = load_backbone(path)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        encoder = cls(backbone, tokenizer, config)
        if encoder.latent_attn is not None:
            encoder.latent_attn.load_state_dict({k: v.to(backbone.dtype) for k, v in latent_state.items()})
        encoder.eval()  # dropout off: a loaded encoder is for inference unless a trainer says otherwise
        return encoder.to(device) if device is not None else encoder

    def save(self, path) -> None:
        """Write the directory atomically (temp dir + rename), replacing what `path` held."""
        path = Path(path)
        if hasattr(self.backbone, "merge_and_unload"):
            raise ValueError("merge the LoRA adapters first: encoder.backbone = encoder.backbone.merge_and_unload()")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.backbone.save_pretrained(tmp)
            if self.latent_attn is not None:
                _write_latent(tmp, self.latent_attn.state_dict())
            self.tokenizer.save_pretrained(tmp)
            self.config.save(tmp)
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def content_hash(self) -> str:
        """sha256 over what `save` writes: weights (names, dtypes, shapes, bytes), tokenizer, configs.
        Equal before save and after load, so embedding caches keyed by it survive a round trip."""
        h = hashlib.sha256()
        # Config fields that do not change the function computed (save_pretrained itself fills in
        # `architectures`; dtypes are covered by the tensors) stay out.
        skip = ("architectures", "transformers_version", "dtype", "torch_dtype")
        arch = {k: v for k, v in self.backbone.config.to_dict().items() if not k.startswith("_") and k not in skip}
        h.update(json.dumps([asdict(self.config), arch], sort_keys=True, default=str).encode())
        tok = self.tokenizer
        vocab = tok.backend_tokenizer.to_str() if tok.is_fast else json.dumps(sorted(tok.get_vocab().items()))
        h.update(json.dumps([vocab, tok.pad_token, tok.all_special_tokens]).encode())
        for name, tensor in sorted(self.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    # ---- tokenization --------------------------------------------------------------------------------

    def _token_rows(self, texts: list[str], instruction: str | None) -> tuple[list[list[int]], list[int]]:
        """Per text: its token ids (specials included, truncated) and how many leading ids are context
        only (leading specials + instruction). Text and instruction are tokenized separately, so the text
        keeps the same tokens with or without an instruction and truncation never cuts the instruction."""
        tok = self.tokenizer
        prefix = tok(f"{instruction}:", add_special_tokens=False)["input_ids"] if instruction else []
        budget = self.config.max_length - len(self._before) - len(self._after) - len(prefix)
        if budget < 1:
            raise ValueError(f"instruction {instruction!r} leaves no room for text within max_length")
        bodies = tok([f" {t}" if instruction else t for t in texts], add_special_tokens=False)["input_ids"]
        self.last_truncated = sum(len(b) > budget for b in bodies)
        rows = [self._before + prefix + b[:budget] + self._after for b in bodies]
        return rows, [len(self._before) + len(prefix)] * len(rows)

    def _collate(self, rows: list[list[int]], skips: list[int]) -> dict:
        """Left-pad to the longest row; pool_mask = real tokens after the context prefix."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        pool_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (row, skip) in enumerate(zip(rows, skips)):
            ids[i, width - len(row):] = torch.tensor(row)
            attention[i, width - len(row):] = 1
            pool_mask[i, width - len(row) + skip:] = True
        return {"input_ids": ids, "attention_mask": attention, "pool_mask": pool_mask}

    def tokenize(self, texts: list[str], instruction: str | None = None) -> dict:
        """Batch for `forward`. instruction None means the config's default; "" means none. Sets
        `last_truncated` to the number of texts cut at `config.max_length`."""
        instruction = self.config.instruction if instruction is None else instruction
        return self._collate(*self._token_rows(list(texts), instruction))

    # ---- encoding ------------------------------------------------------------------------------------

    def forward(self, input_ids, attention_mask, pool_mask) -> torch.Tensor:
        """(B, D) embeddings, not normalised (the contrastive loss normalises)."""
        hidden = run_backbone(self.backbone, input_ids, attention_mask, self.bidirectional)
        if self.latent_attn is not None:
            return self.latent_attn(hidden, pool_mask)
        return pool(hidden, pool_mask, self.config.pooling)

    @torch.inference_mode()
    def encode(self, texts: list[str], instruction: str | None = None, batch_size: int = 32) -> np.ndarray:
        """(N, D) float32, L2-normalised, rows in input order. Batches are cut from the texts sorted by
        token count, so little compute goes to padding; `last_truncated` counts truncated texts."""
        texts = list(texts)
        dim = self.backbone.config.hidden_size
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        instruction = self.config.instruction if instruction is None else instruction
        rows, skips = self._token_rows(texts, instruction)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        device = next(self.parameters()).device
        out = torch.empty((len(rows), dim), dtype=torch.float32)
        was_training = self.training
        self.eval()  # dropout off (BERT-style backbones have it)
        try:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = self._collate([rows[i] for i in idx], [skips[i] for i in idx])
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    emb = self(**batch)
                out[idx] = F.normalize(emb.float(), dim=-1).cpu()
        finally:
            self.train(was_training)
        return out.numpy()


def load_backbone(path: Path) -> nn.Module:
    """AutoModel from `path`; its weight file also holds `latent_attn.*`, which are expected, so the
    loader's own report (which would flag them) is muted and missing / other keys are checked here."""
    hf_logger = logging.getLogger("transformers.modeling_utils")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        model, info = AutoModel.from_pretrained(path, local_files_only=True, output_loading_info=True)
    finally:
        hf_logger.setLevel(level)
    if info["missing_keys"]:
        raise ValueError(f"{path}: backbone weights missing from the checkpoint: {sorted(info['missing_keys'])[:8]}")
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith(LATENT) and not k.startswith("lm_head."))
    if unexpected:
        log.warning("%s: ignored %d unexpected weights, e.g. %s", path, len(unexpected), unexpected[:4])
    return model


def _read_latent(path: Path) -> dict[str, torch.Tensor]:
    """The `latent_attn.*` tensors of a directory (prefix stripped), from model.safetensors or shards."""
    files = sorted(path.glob("*.safetensors"))
    state = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            state.update({k[len(LATENT):]: f.get_tensor(k) for k in f.keys() if k.startswith(LATENT)})
    return state


def _write_latent(directory: Path, state: dict[str, torch.Tensor]) -> None:
    """Add the pooler's tensors to the backbone's weight file (or, for a sharded save, as one more shard)."""
    latent = {LATENT + k: v.detach().cpu().contiguous() for k, v in state.items()}
    index = directory / f"{WEIGHTS}.index.json"
    if index.exists():
        save_file(latent, directory / "model-latent_attn.safetensors", metadata={"format": "pt"})
        meta = json.loads(index.read_text())
        meta["weight_map"].update({k: "model-latent_attn.safetensors" for k in latent})
        index.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return
    weights = load_file(directory / WEIGHTS)
    save_file({**weights, **latent}, directory / WEIGHTS, metadata={"format": "pt"})
