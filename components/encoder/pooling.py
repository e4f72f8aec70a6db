"""Token states -> one vector per text: mean, last token, or NV-Embed latent attention.

`pool_mask` (B, T) bool marks the tokens that are pooled: the text's own tokens. Padding and the
instruction prefix are False, so an instruction steers the states (it is attended to) without being
averaged into the embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pool(hidden: torch.Tensor, pool_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, T, D) states, (B, T) bool mask -> (B, D). mode: "mean" | "last" (see `LatentAttentionPooler`
    for "latent", which has weights)."""
    mask = pool_mask.bool()
    if mode == "mean":
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # clamp: an empty row gives 0, not NaN
    if mode == "last":
        # Index of the last True per row, from the mask rather than assuming left padding.
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(mask, positions, -1).amax(1).clamp(min=0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling mode must be 'mean' or 'last' here, got {mode!r}")


class _GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return x * F.gelu(gate)


class LatentAttentionPooler(nn.Module):
    """NV-Embed latent attention (Lee et al. 2024): every token state queries a learned latent array
    (keys = values = latents), a GEGLU feed-forward refines the result, both pre-normed with
    residuals, then a masked mean over the pooled tokens.

    The latents act as a trainable dictionary the tokens are re-expressed in; unlike attention over
    tokens it needs no padding mask until the final mean. Parameter names follow the publicly
    released llm2vec4cxr checkpoint (`latents`, `cross_attn.{norm,norm_context,fn.to_q/k/v/out}`,
    `cross_ff.{norm,fn.net}`), so its `latent_attn.*` tensors load as they are."""

    def __init__(self, dim: int, num_latents: int = 64, heads: int = 4, head_dim: int | None = None,
                 ff_mult: int = 2):
        super().__init__()
        head_dim = head_dim or dim // heads
        inner = heads * head_dim
        self.heads, self.head_dim, self.ff_mult = heads, head_dim, ff_mult
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.cross_attn = nn.Module()
        self.cross_attn.norm, self.cross_attn.norm_context = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.cross_attn.fn = nn.Module()
        for name in ("to_q", "to_k", "to_v"):
            setattr(self.cross_attn.fn, name, nn.Linear(dim, inner, bias=False))
        self.cross_attn.fn.to_out = nn.Linear(inner, dim, bias=False)
        self.cross_ff = nn.Module()
        self.cross_ff.norm = nn.LayerNorm(dim)
        self.cross_ff.fn = nn.Module()
        self.cross_ff.fn.net = nn.Sequential(nn.Linear(dim, 2 * ff_mult * dim), _GEGLU(), nn.Linear(ff_mult * dim, dim))

    @property
    def settings(self) -> dict:
        """What `EncoderConfig.latent` must say to rebuild this module."""
        return {"num_latents": self.latents.shape[0], "heads": self.heads, "head_dim": self.head_dim,
                "ff_mult": self.ff_mult}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], heads: int = 8) -> "LatentAttentionPooler":
        """Sizes from saved tensors. The head count is not in any shape: the released checkpoint uses 8."""
        n, dim = state["latents"].shape
        inner = state["cross_attn.fn.to_q.weight"].shape[0]
        ff_mult = state["cross_ff.fn.net.2.weight"].shape[1] // dim
        return cls(dim, num_latents=n, heads=heads, head_dim=inner // heads, ff_mult=ff_mult)

    def forward(self, hidden: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = hidden.shape
        attn, fn = self.cross_attn, self.cross_attn.fn
        latents = attn.norm_context(self.latents.to(hidden.dtype))
        q = fn.to_q(attn.norm(hidden)).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k, v = (proj(latents).view(-1, self.heads, self.head_dim).transpose(0, 1) for proj in (fn.to_k, fn.to_v))
        out = F.scaled_dot_product_attention(q, k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1))
        x = hidden + fn.to_out(out.transpose(1, 2).reshape(B, T, -1))
        x = x + self.cross_ff.fn.net(self.cross_ff.norm(x))
        return pool(x, pool_mask, "mean")
