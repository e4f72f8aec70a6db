"""Params of the CLIP stage (LLM2CLIP4CXR)."""

from __future__ import annotations


from pydantic import Field, model_validator

from components.params.base import _Section
from components.params.text import LoopConfig, LoraSettings



class ClipLora(LoraSettings):
    """Online text mode: LoRA on the text encoder."""

    targets: tuple[str, ...] | None = None  # None: the family's attention + MLP projections (Llama-like or BERT)


class ClipAugment(_Section):
    """Training augmentation of the images; never a horizontal flip (laterality is in the labels)."""

    crop_scale: tuple[float, float] = (0.85, 1.0)  # random resized crop: area fraction kept, near 1
    max_degrees: float = Field(5.0, ge=0, le=30)  # rotation range, both ways
    jitter: float = Field(0.1, ge=0, le=0.5)  # brightness and contrast, +- this fraction


class ClipParams(_Section):
    """LLM2CLIP4CXR training (components/clip): an open_clip vision tower against a report encoder."""

    ingest: str = "data/ingested"  # images.parquet + memory-mapped shards
    clean: str = "data/clean"
    variants: str = "data/variants"
    embeddings: str = "data/embeddings"  # cached mode reuses these vectors when made by the same encoder
    encoder: str = "data/encoder"  # text_tower llm2vec4cxr
    baseline: str = "data/baselines/bert"  # text_tower bert_baseline
    cache: str = ".cxr/cache/embeddings"  # the per-encoder SQLite cache the embed stage shares
    out: str = "data/clip"
    metrics: str = "data/metrics/clip.json"
    curve: str = "data/metrics/clip_curve.json"  # per-step loss and logit scale, for `dvc plots show`
    text_mode: str = Field("cached", pattern="^(cached|online)$")  # cached: frozen encoder + adapter; online: LoRA
    text_tower: str = Field("llm2vec4cxr", pattern="^(llm2vec4cxr|bert_baseline|minilm|openclip)$")
    vision_model: str = "cxr-vit-tiny"  # components/clip/model_configs/<name>.json or an open_clip name
    vision_weights: str | None = None  # a local checkpoint of the vision tower (strict load)
    image_size: int = Field(64, ge=16, le=1024)  # tower input side; frames are ingest.resolution, resized
    embed_dim: int = Field(64, ge=8)  # joint space width
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # grayscale is replicated to 3 channels, then normalised
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    augment: ClipAugment = ClipAugment()
    adapter_blocks: int = Field(2, ge=0)  # cached mode: residual MLP blocks of the text adapter
    adapter_hidden: int = Field(0, ge=0)  # 0: 4 x the encoder width
    lora: ClipLora = ClipLora()
    gradient_checkpointing: bool = False  # recompute vision (and online: encoder) activations: memory for time
    loss: str = Field("clip", pattern="^(clip|siglip)$")
    local_loss: bool = False  # DDP: each rank scores its own rows against all columns (less memory, same optimum)
    max_logit_scale: float = Field(100.0, gt=1)  # the learnable temperature is clamped here, as in CLIP
    variant_rate: float = Field(0.5, ge=0, le=1)  # draws that take an accepted equivalent variant (never an error one)
    sections: dict[str, float] = Field(default_factory=lambda: {"full": 0.5, "findings": 0.25, "impression": 0.25})
    section_instructions: dict[str, str] = Field(default_factory=lambda: {
        "findings": "Findings section of a chest X-ray report",
        "impression": "Impression section of a chest X-ray report"})
    shuffle_rate: float = Field(0.0, ge=0, le=1)  # draws whose sentences are reordered
    workers: int = Field(1, ge=0)  # DataLoader processes per rank
    nproc: int = Field(1, ge=1)  # > 1: the stage launches torchrun with this many processes
    eval_every: int = Field(50, ge=0)  # steps between validation runs (0: only at the end)
    eval_batch_size: int = Field(64, ge=1)
    grid_images: int = Field(4, ge=0)  # validation images shown with their top-3 reports (Dagster)
    text_batch_size: int = Field(64, ge=1)  # cached mode: encoding the texts the cache lacks
    # demo: ~0.1 s/step for the tiny ViT on one CPU core; GPU: components/clip/profiles/gpu.yaml
    loop: LoopConfig = LoopConfig(steps=300, batch_size=32, lr=1e-3, warmup_steps=30, weight_decay=0.1,
                                  checkpoint_every=100)

    @model_validator(mode="after")
    def _check(self):
        if self.text_tower == "openclip" and self.text_mode == "cached":
            raise ValueError("text_tower openclip is trained from scratch: use text_mode online")
        unknown = set(self.sections) - {"full", "findings", "impression"}
        if unknown or not any(v > 0 for v in self.sections.values()):
            raise ValueError(f"sections: weights of full/findings/impression, one positive; got {self.sections}")
        missing = {"findings", "impression"} - set(self.section_instructions)
        if missing:
            raise ValueError(f"section_instructions needs {sorted(missing)}")
        if min(self.std) <= 0:
            raise ValueError("std must be positive")
        return self
