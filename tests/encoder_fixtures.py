"""Tiny, local, random encoder pieces for tests: a byte-level BPE tokenizer trained on a few report
sentences and tiny decoder configs. Nothing is downloaded. Reused by the training-step tests."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (GemmaConfig, GemmaModel, LlamaConfig, LlamaModel, MistralConfig, MistralModel,
                          PreTrainedTokenizerFast, Qwen2Config, Qwen2Model)

SENTENCES = [
    "No acute cardiopulmonary process.",
    "The lungs are clear without focal consolidation, effusion or pneumothorax.",
    "Heart size is normal. Mediastinal contours are unremarkable.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "Right lower lobe opacity concerning for pneumonia.",
    "Left basilar atelectasis. No pneumothorax.",
    "Endotracheal tube terminates 4 cm above the carina.",
    "Moderate pulmonary edema, worse compared to prior study.",
    "Stable appearance of the chest. Impression: no change.",
    "There is a small left apical pneumothorax.",
    "Healed fracture of the right sixth rib.",
    "Enlarged cardiomediastinal silhouette. Possible pericardial effusion.",
    "Findings: patchy opacities in both lungs. Impression: multifocal pneumonia.",
    "NG tube in the stomach. Lines and tubes unchanged.",
    "Lung volumes are low. Bibasilar opacities likely atelectasis.",
    "A 2 cm nodule in the left upper lobe; recommend CT.",
    "No pleural effusion. No evidence of pulmonary edema.",
    "Right PICC tip in the mid SVC.",
    "Cardiac silhouette within normal limits. Osseous structures intact.",
    "Interval resolution of the left lower lobe consolidation.",
]
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def build_tokenizer(directory: str | Path | None = None, vocab_size: int = 300, pad: bool = True):
    """A byte-level BPE PreTrainedTokenizerFast (bos/eos/unk, and pad unless pad=False, to mimic a
    decoder LM without one); saved to `directory` when given."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES * 3, trainer)
    bos = tok.token_to_id("<s>")  # BOS in front, as Llama tokenizers do, so special-token handling is exercised
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    specials = dict(SPECIALS) if pad else {k: v for k, v in SPECIALS.items() if k != "pad_token"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
    if directory is not None:
        fast.save_pretrained(directory)
    return fast


TINY = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
FAMILY_MODELS = {
    "llama": (LlamaConfig, LlamaModel),
    "mistral": (MistralConfig, MistralModel),
    "qwen2": (Qwen2Config, Qwen2Model),
    "gemma": (GemmaConfig, GemmaModel),
}


def tiny_model(family: str = "llama", attn: str = "sdpa", seed: int = 0, **overrides):
    """A tiny random base model of `family` with attention implementation `attn`, in eval mode."""
    config_cls, model_cls = FAMILY_MODELS[family]
    extra = {"head_dim": 8} if family == "gemma" else {}
    config = config_cls(**{**TINY, **extra, **overrides}, attn_implementation=attn)
    torch.manual_seed(seed)
    return model_cls(config).eval()
