"""One asset per pipeline stage, built from the stage declarations (components/stages). Each runs the
stage's `cxr` command as a Pipes subprocess, so the Dagster graph, the DVC graph and the CLI are three
doors onto the same functions."""


from dagster import AssetExecutionContext, Config, PipesSubprocessClient, asset
from pydantic import Field

from components.stages import Stage, instances, upstream
from components.stages.code import code_version
from orchestration.resources import CxrProject


class StageConfig(Config):
    """Launchpad overrides for this run, as `section.key: value` (same as `cxr ... --set`)."""

    overrides: dict[str, str] = Field(default_factory=dict)


def asset_name(stage: Stage, item: str = "") -> str:
    """A foreach stage's item is its own asset (its own cached artifact): `clip_ablation_minilm`."""
    return f"{stage.asset}_{item}" if item else stage.asset


def stage_asset(stage: Stage, upstream_assets: list[str], item: str = ""):
    # Dagster tag values cannot hold '@': a foreach item is tagged apart from the stage name.
    tags = {"dvc_stage": stage.name, **({"dvc_item": item} if item else {})}
    shown = f"{stage.name} {item}".strip()
    @asset(name=asset_name(stage, item), deps=upstream_assets, group_name=stage.group,
           description=f"{stage.description}\n\nDVC stage `{stage.instance(item)}`, CLI `cxr {shown}`.",
           kinds={"python"}, tags=tags, code_version=code_version(stage.name))
    def _run(context: AssetExecutionContext, config: StageConfig, pipes: PipesSubprocessClient,
             project: CxrProject):
        command = project.command(stage.name, config.overrides, item)
        context.log.info("running %s", " ".join(command))
        return pipes.run(command=command, context=context, cwd=str(project.path),
                         env=project.env()).get_materialize_result()

    return _run


def build_assets(params_tree: dict) -> list:
    """The asset graph for a project's params (inputs wired to the stages whose outputs hold them)."""
    nodes = instances(params_tree)
    asset_of = {s.instance(i): asset_name(s, i) for s, i in nodes}
    graph = upstream(params_tree)
    return [stage_asset(s, [asset_of[u] for u in graph[s.instance(i)]], i) for s, i in nodes]
