"""CXRClip: an open_clip vision tower and a text tower meeting in one embedding space.

Text towers: a TextEncoder directory (LLM2VEC4CXR, the BERT baseline, MiniLM) followed by a TextHead
(cached mode: frozen encoder + residual MLP adapter; online mode: LoRA-tuned encoder + LayerNorm +
projection), or open_clip's own text transformer trained from scratch (`openclip`).

Saved layout (self-contained: loading needs neither the training code nor the original encoder dir):
    config.json          ClipModelConfig, including the text encoder's content hash
    model.safetensors    vision tower, text head (or open_clip text tower), logit scale (and bias)
    text_encoder/        the text encoder as TextEncoder.save writes it (LoRA merged); absent for openclip
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.clip.preprocess import load_frame, to_tensor
from components.clip.towers import TextHead, build_openclip_text, build_visual

CONFIG_NAME = "config.json"
WEIGHTS = "model.safetensors"
ENCODER_DIR = "text_encoder"
TEXT_MODES = ("cached", "online")
TEXT_TOWERS = ("llm2vec4cxr", "bert_baseline", "minilm", "openclip")
SECTIONS = ("full", "findings", "impression")


@dataclass
class ClipModelConfig:
    vision_model: str = "cxr-vit-tiny"  # an open_clip config name (components/clip/model_configs or built in)
    image_size: int = 64  # tower input side, pixels
    embed_dim: int = 64  # joint space
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])  # per channel, after gray -> 3 channels
    std: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    decode_resolution: int = 256  # DICOM/PNG/JPEG inputs are decoded as ingest did (ingest.resolution)
    decode_percentiles: list[float] = field(default_factory=lambda: [0.5, 99.5])
    text_mode: str = "cached"  # cached (frozen encoder + adapter) | online (LoRA encoder in the loop)
    text_tower: str = "llm2vec4cxr"  # llm2vec4cxr | bert_baseline | minilm | openclip
    text_dim: int = 0  # the text encoder's output width (0 for openclip)
    adapter_blocks: int = 2  # cached mode: residual MLP blocks before the projection
    adapter_hidden: int = 0  # their hidden width (0: 4 x text_dim)
    loss: str = "clip"  # clip (softmax InfoNCE) | siglip (sigmoid, with a learnable bias)
    # initial logit scale (the inverse temperature) and SigLIP's bias; None: the loss's own convention,
    # as open_clip and the papers set them (CLIP 1/0.07; SigLIP 10 with a bias of -10)
    init_logit_scale: float | None = None
    init_logit_bias: float = -10.0
    # Section-specific instructions for encoders trained with one (the full report uses the encoder's own).
    section_instructions: dict = field(default_factory=lambda: {
        "findings": "Findings section of a chest X-ray report",
        "impression": "Impression section of a chest X-ray report"})
    encoder_hash: str | None = None  # content hash of text_encoder/ (TextEncoder.content_hash), set by save
    source_encoder: str | None = None  # where the text encoder came from (params path or package), for the record

    def __post_init__(self):
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {self.text_mode!r}")
        if self.text_tower not in TEXT_TOWERS:
            raise ValueError(f"text_tower must be one of {TEXT_TOWERS}, got {self.text_tower!r}")
        if self.loss not in ("clip", "siglip"):
            raise ValueError(f"loss must be clip or siglip, got {self.loss!r}")
        if self.init_logit_scale is None:
            self.init_logit_scale = 10.0 if self.loss == "siglip" else 1 / 0.07

    @classmethod
    def from_dict(cls, d: dict) -> "ClipModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class CXRClip(nn.Module):
    def __init__(self, config: ClipModelConfig, text_encoder=None):
        super().__init__()
        self.config = config
        self.visual = build_visual(config.vision_model, config.embed_dim, config.image_size)
        if config.text_tower == "openclip":
            self.text_tower, self.tokenizer = build_openclip_text(config.vision_model, config.embed_dim)
            self.text_encoder, self.text_head = None, None
        else:
            if text_encoder is None:
                raise ValueError(f"text tower {config.text_tower} needs its TextEncoder")
            config.text_dim = int(text_encoder.backbone.config.hidden_size)
            self.text_encoder = text_encoder
            blocks = config.adapter_blocks if config.text_mode == "cached" else 0
            self.text_head = TextHead(config.text_dim, config.embed_dim, blocks, config.adapter_hidden)
        # log of the temperature's inverse, as CLIP learns it; `logit_scale` (a float) is its exp
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(config.init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(config.init_logit_bias))) if config.loss == "siglip" else None

    # ---- text ----------------------------------------------------------------------------------------

    def instruction(self, section: str) -> str | None:
        """The encoder instruction for a section: None (the encoder's default) for the full report and
        for encoders trained without instructions ("" would also do), the section's own otherwise."""
        if section not in SECTIONS:
            raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
        if section == "full" or self.text_encoder is None or not self.text_encoder.config.instruction:
            return None
        return self.config.section_instructions[section]

    def text_inputs(self, texts: list[str], sections: list[str]):
        """Model input for texts (online and openclip towers): token ids with per-row instructions."""
        if self.text_encoder is None:
            return self.tokenizer(list(texts))
        enc = self.text_encoder
        rows, skips = [None] * len(texts), [0] * len(texts)
        for section in sorted(set(sections)):
            idx = [i for i, s in enumerate(sections) if s == section]
            instruction = self.instruction(section)
            got = enc._token_rows([texts[i] for i in idx], enc.config.instruction if instruction is None else instruction)
            for i, row, skip in zip(idx, *got):
                rows[i], skips[i] = row, skip
        return enc._collate(rows, skips)

    def text_features(self, text) -> torch.Tensor:
        """Unnormalised joint-space text features of: encoder vectors (B, text_dim) in cached mode, or
        the output of `text_inputs` otherwise."""
        if self.text_encoder is None:
            return self.text_tower(text.to(self.log_logit_scale.device))
        if self.config.text_mode == "cached":
            return self.text_head(text.to(self.log_logit_scale.device, torch.float32))
        batch = {k: v.to(self.log_logit_scale.device) for k, v in text.items()}
        return self.text_head(self.text_encoder(**batch).float())

    def forward(self, images: torch.Tensor, text):
        """(image features, text features) L2-normalised, the logit scale (a tensor, for the loss) and bias.
        The trainer clamps log_logit_scale after each step."""
        image = F.normalize(self.visual(images).float(), dim=-1)
        txt = F.normalize(self.text_features(text).float(), dim=-1)
        return image, txt, self.log_logit_scale.exp(), self.logit_bias

    # ---- inference API -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.log_logit_scale.device

    def preprocess(self, image) -> torch.Tensor:
        frame = load_frame(image, self.config.decode_resolution, tuple(self.config.decode_percentiles))
        return to_tensor(frame, self.config.image_size, self.config.mean, self.config.std)

    @torch.inference_mode()
    def encode_image(self, images, batch_size: int = 32) -> np.ndarray:
        """(n, embed_dim) float32 L2-normalised rows of uint8 frames and/or DICOM/PNG/JPEG paths or bytes."""
        images = list(images)
        out = np.zeros((len(images), self.config.embed_dim), dtype=np.float32)
        was = self.training
        self.eval()
        try:
            for start in range(0, len(images), batch_size):
                batch = torch.stack([self.preprocess(im) for im in images[start:start + batch_size]])
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    feats = self.visual(batch.to(self.device))
                out[start:start + len(batch)] = F.normalize(feats.float(), dim=-1).cpu().numpy()
        finally:
            self.train(was)
        return out

    @torch.inference_mode()
    def encode_text(self, texts, section: str = "full", batch_size: int = 32) -> np.ndarray:
        """(n, embed_dim) float32 L2-normalised rows; `section` picks the section-specific instruction."""
        texts = list(texts)
        instruction = self.instruction(section)  # validates the section for every tower
        out = np.zeros((len(texts), self.config.embed_dim), dtype=np.float32)
        was = self.training
        self.eval()
        try:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start:start + batch_size]
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    if self.config.text_mode == "cached" and self.text_encoder is not None:
                        feats = self.text_features(torch.from_numpy(
                            self.text_encoder.encode(chunk, instruction=instruction, batch_size=batch_size)))
                    else:
                        feats = self.text_features(self.text_inputs(chunk, [section] * len(chunk)))
                out[start:start + len(chunk)] = F.normalize(feats.float(), dim=-1).cpu().numpy()
        finally:
            self.train(was)
        return out

    @property
    def logit_scale(self) -> float:
        """The learned inverse temperature (cosine similarities are multiplied by it)."""
        return float(self.log_logit_scale.detach().exp())

    def similarity(self, image_vecs: np.ndarray, text_vecs: np.ndarray) -> np.ndarray:
        """Logits: cosine similarity x logit scale (+ bias for a SigLIP model), images x texts."""
        logits = np.asarray(image_vecs, np.float32) @ np.asarray(text_vecs, np.float32).T * self.logit_scale
        if self.logit_bias is not None:
            logits = logits + float(self.logit_bias.detach())
        return logits

    # ---- persistence ---------------------------------------------------------------------------------

    def merge_lora(self) -> None:
        """Fold LoRA adapters into the encoder weights (online mode), as saving requires."""
        if self.text_encoder is not None and hasattr(self.text_encoder.backbone, "merge_and_unload"):
            self.text_encoder.backbone = self.text_encoder.backbone.merge_and_unload()

    def own_state(self) -> dict[str, torch.Tensor]:
        """Everything but the text encoder (saved as its own directory)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                if not k.startswith("text_encoder.")}

    def save(self, path) -> None:
        """Write config.json, model.safetensors and text_encoder/ into `path` (created or replaced)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.merge_lora()
        if self.text_encoder is not None:
            self.text_encoder.save(path / ENCODER_DIR)
            self.config.encoder_hash = self.text_encoder.content_hash()
        save_file(self.own_state(), path / WEIGHTS, metadata={"format": "pt"})
        (path / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path, device=None) -> "CXRClip":
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_NAME).exists() or not (path / WEIGHTS).exists():
            raise FileNotFoundError(f"{path} is not a CXRClip directory (config.json + model.safetensors): "
                                    f"run `cxr clip train` first")
        config = ClipModelConfig.from_dict(json.loads((path / CONFIG_NAME).read_text()))
        encoder = None
        if config.text_tower != "openclip":
            from components.encoder.text_encoder import TextEncoder

            encoder = TextEncoder.load(path / ENCODER_DIR)
        model = cls(config, encoder)
        missing, unexpected = model.load_state_dict(load_file(path / WEIGHTS), strict=False)
        missing = [k for k in missing if not k.startswith("text_encoder.")]
        if missing or unexpected:
            raise ValueError(f"{path}/{WEIGHTS} does not match its config: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        model.eval()
        return model.to(device) if device is not None else model
