"""Bidirectional attention for decoder LMs (Llama, Mistral, Qwen2, Gemma), without the llm2vec package.

Two things make a decoder attend both ways, and both are needed:
1. every attention module's `is_causal` flag is False, so SDPA (and flash) kernels never add their
   own causal triangle when they are handed no mask;
2. the model gets an explicit additive float mask of shape (B, 1, T, T): transformers returns a 4D
   mask unchanged, so its own causal-mask builder never runs. Additive float (0 / finfo.min) rather
   than boolean because a boolean 4D mask leaks padding in eager attention, and never None because
   an unpadded batch would then fall back to the kernel's default.

Position ids are computed from the mask (first real token is position 0) so left padding neither
shifts rotary phases nor absolute position embeddings (BERT): a real token's state does not depend
on how much padding precedes it.
"""

from __future__ import annotations

import torch
from torch import nn


def make_bidirectional(model: nn.Module) -> nn.Module:
    """Clear `is_causal` on every attention module of `model` (a *Model, *ForCausalLM or a PEFT wrap
    of either) in place; returns the model. Raises when nothing was found, so an unsupported family
    fails loudly instead of silently staying causal."""
    patched = 0
    for module in model.modules():
        if hasattr(module, "is_causal") and type(module).__name__.endswith("Attention"):
            module.is_causal = False
            patched += 1
    if patched == 0:
        raise ValueError(f"no attention module with an `is_causal` flag in {type(model).__name__}")
    return model


def bidirectional_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 1/0 padding mask -> (B, 1, T, T) additive float mask: 0 where query i may attend key j.

    Every query sees every real key; padding keys are hidden from all queries. A padding query row
    would then be all -inf (NaN after softmax, which poisons gradients even though it is never
    pooled), so each padding query also sees itself."""
    keep = attention_mask.bool()
    allowed = keep[:, None, None, :].expand(-1, 1, keep.shape[1], -1)  # (B, 1, T query, T key)
    allowed = allowed | torch.eye(keep.shape[1], dtype=torch.bool, device=keep.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=keep.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over real tokens whatever the padding side; padding positions get 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def run_backbone(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 bidirectional: bool) -> torch.Tensor:
    """Last hidden states (B, T, D) of a base model (or a PEFT wrap of one).

    bidirectional: the 4D additive mask above (the model must have been through
    `make_bidirectional`); otherwise the plain 2D mask (causal decoders, BERT-style encoders)."""
    if bidirectional:
        dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
        if torch.is_autocast_enabled(input_ids.device.type):  # scores are computed in the autocast dtype
            dtype = torch.get_autocast_dtype(input_ids.device.type)
        mask = bidirectional_mask(attention_mask, dtype)
    else:
        mask = attention_mask
    # A *ForCausalLM (e.g. during MNTP) returns logits; its final states come from hidden_states.
    get_head = getattr(model, "get_output_embeddings", None)
    causal_lm = callable(get_head) and get_head() is not None
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids_from_mask(attention_mask),
                use_cache=False, output_hidden_states=causal_lm)
    return out.hidden_states[-1] if causal_lm else out.last_hidden_state
