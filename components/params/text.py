"""Params of the text stages: variants (and its model backends), encoder (its training steps, used by
the library directly), baselines, embed."""

from __future__ import annotations


from pydantic import Field, model_validator

from components.params.base import _Section
from components.variants.base import EQUIVALENT_KINDS, ERROR_CATEGORIES



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
