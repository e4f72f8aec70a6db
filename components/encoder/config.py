"""What an encoder directory records besides the Hugging Face weights: how to pool and prompt it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

CONFIG_NAME = "encoder_config.json"
POOLING_MODES = ("mean", "last", "latent")
FAMILIES = ("llama", "mistral", "qwen2", "gemma", "bert")


@dataclass
class EncoderConfig:
    family: str = "llama"  # backbone family: decoder families get bidirectional attention, bert is native
    pooling: str = "mean"  # mean | last (token) | latent (latent-attention pooling, NV-Embed style)
    max_length: int = 256  # tokens, instruction included; longer texts are truncated (and counted)
    instruction: str | None = None  # default instruction prefixed at encode time; its tokens are not pooled
    bidirectional: bool = True  # decoder backbones: every layer attends both ways
    # latent pooling sizes: latent array length, attention heads (head_dim defaults to hidden/heads),
    # feed-forward width multiple; the released llm2vec4cxr checkpoint uses 512 latents and 8 heads
    latent: dict = field(default_factory=lambda: {"num_latents": 64, "heads": 4, "ff_mult": 2})

    def __post_init__(self):
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")

    def save(self, directory: str | Path) -> None:
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "EncoderConfig":
        return cls(**json.loads((Path(directory) / CONFIG_NAME).read_text()))
