"""One asset per pipeline stage. Each runs the stage's DVC `cmd` as a Pipes subprocess, so the
Dagster graph, the DVC graph and the CLI are three doors onto the same functions."""


from dataclasses import dataclass

from dagster import AssetExecutionContext, Config, PipesSubprocessClient, asset
from pydantic import Field

from orchestration.resources import CxrProject


class StageConfig(Config):
    """Launchpad overrides for this run, as `section.key: value` (same as `cxr ... --set`)."""

    overrides: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    asset: str
    dvc_stage: str
    deps: tuple[str, ...]
    group: str
    description: str


STAGES = (
    Stage("raw_studies", "synth", (), "data",
          "Synthetic MIMIC-CXR-style archive: DICOMs, reports, truth table and planted traps."),
    Stage("ingested_studies", "ingest", ("raw_studies",), "data",
          "Studies table, image shards and quarantine from the configured source (params ingest.*)."),
    Stage("clean_reports", "clean", ("ingested_studies",), "reports",
          "Normalised, sectioned, de-identified reports with CheXpert labels, validated by Great Expectations."),
    Stage("report_variants", "variants", ("clean_reports",), "reports",
          "Equivalent rewrites (positives) and single-error rewrites (hard negatives), each re-labelled and gated."),
    Stage("text_encoder", "encoder", ("clean_reports", "report_variants"), "encoder",
          "LLM2VEC4CXR: bidirectional LM adapted with MNTP and supervised contrastive learning (LoRA, merged)."),
    Stage("baseline_encoders", "baselines", ("clean_reports", "report_variants"), "encoder",
          "BERT baseline of the same size and data budget (MLM + the same contrastive step); MiniLM ships ready."),
    Stage("text_embeddings", "embed", ("text_encoder", "clean_reports", "report_variants"), "encoder",
          "Embeddings of every clean report and accepted variant, cached per encoder content hash."),
)


def stage_asset(stage: Stage):
    @asset(name=stage.asset, deps=list(stage.deps), group_name=stage.group, description=stage.description,
           kinds={"python"}, tags={"dvc_stage": stage.dvc_stage})
    def _run(context: AssetExecutionContext, config: StageConfig, pipes: PipesSubprocessClient,
             project: CxrProject):
        command = project.command(stage.dvc_stage, config.overrides)
        context.log.info("running %s", " ".join(command))
        return pipes.run(command=command, context=context, cwd=str(project.path),
                         env=project.env()).get_materialize_result()

    return _run


stage_assets = [stage_asset(s) for s in STAGES]
