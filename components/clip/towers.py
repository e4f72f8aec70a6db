"""The towers of LLM2CLIP4CXR: open_clip vision towers from the project's JSON configs, and the text
heads that map a text encoder's output into the joint space.

Model configs (components/clip/model_configs/*.json, open_clip's format) are registered with
`open_clip.add_model_config`; towers are built with random weights (pretrained=None: nothing is ever
downloaded), then optionally loaded from a local checkpoint (`load_vision_weights`, strict).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False


def model_config(name: str) -> dict:
    """The open_clip config of `name` (the project's configs are registered on first use)."""
    global _registered
    import open_clip

    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        ours = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ValueError(f"unknown vision model {name!r}; the project's configs: {ours} (or any open_clip name)")
    return cfg


def build_visual(name: str, embed_dim: int, image_size: int) -> nn.Module:
    """The vision tower of config `name`, output `embed_dim`, input `image_size` px, random init."""
    from open_clip.model import _build_vision_tower

    vision_cfg = dict(model_config(name)["vision_cfg"], image_size=image_size)
    return _build_vision_tower(embed_dim, vision_cfg)


def build_openclip_text(name: str, embed_dim: int) -> tuple[nn.Module, object]:
    """open_clip's own text transformer of config `name` (random init) and its tokenizer."""
    import open_clip
    from open_clip.model import _build_text_tower

    model_config(name)
    return _build_text_tower(embed_dim, model_config(name)["text_cfg"]), open_clip.get_tokenizer(name)


def load_vision_weights(visual: nn.Module, path: str | Path) -> None:
    """Strictly load a local checkpoint into `visual`: a state dict of the tower itself, or of a whole
    open_clip model (`visual.` keys), optionally under "state_dict" and with DDP's "module." prefix.
    Any missing or unexpected key is an error naming them: a silent partial load trains from noise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip.vision_weights: {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    own = visual.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise ValueError(f"{path} does not match the vision tower: missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}, wrong shape {shapes[:8]}")
    visual.load_state_dict(state, strict=True)


class ResidualMLP(nn.Module):
    """x + W2 act(W1 LN(x)): the adapter block of LLM2CLIP (pre-norm, so depth stays trainable)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class TextHead(nn.Module):
    """Text encoder output -> joint space: standardisation, `blocks` residual MLP blocks (the cached-mode
    adapter; 0 for online mode, where the encoder itself adapts), then LayerNorm and a linear projection.

    Sentence embeddings share a large common component (cosine ~0.99 between unrelated reports from a
    small encoder); subtracting the training texts' mean and dividing by their spread per dimension
    (fixed buffers set once from the cached vectors; identity otherwise) keeps the adapter from starting
    in the collapsed solution where every text looks alike."""

    def __init__(self, text_dim: int, embed_dim: int, blocks: int = 0, hidden: int = 0):
        super().__init__()
        self.register_buffer("shift", torch.zeros(text_dim))
        self.register_buffer("scale", torch.ones(text_dim))
        self.blocks = nn.Sequential(*[ResidualMLP(text_dim, hidden or 4 * text_dim) for _ in range(blocks)])
        self.norm = nn.LayerNorm(text_dim)
        self.proj = nn.Linear(text_dim, embed_dim, bias=False)

    @torch.no_grad()
    def standardise_with(self, vectors: torch.Tensor) -> None:
        self.shift.copy_(vectors.mean(0))
        self.scale.copy_(vectors.std(0).clamp_min(1e-6))

    def forward(self, x):
        return self.proj(self.norm(self.blocks((x - self.shift) / self.scale)))
