"""One asset per pipeline stage, built from the stage declarations (components/stages). Each runs the
stage's `cxr` command as a Pipes subprocess, so the Dagster graph, the DVC graph and the CLI are three
doors onto the same functions."""


from dagster import AssetExecutionContext, Config, PipesSubprocessClient, asset
from pydantic import Field

from components.stages import Stage, all_stages, upstream
from components.stages.code import code_version
from orchestration.resources import CxrProject


class StageConfig(Config):
    """Launchpad overrides for this run, as `section.key: value` (same as `cxr ... --set`)."""

    overrides: dict[str, str] = Field(default_factory=dict)


def stage_asset(stage: Stage, upstream_assets: list[str]):
    @asset(name=stage.asset, deps=upstream_assets, group_name=stage.group,
           description=f"{stage.description}\n\nDVC stage and CLI: `cxr {stage.name}`.",
           kinds={"python"}, tags={"dvc_stage": stage.name}, code_version=code_version(stage.name))
    def _run(context: AssetExecutionContext, config: StageConfig, pipes: PipesSubprocessClient,
             project: CxrProject):
        command = project.command(stage.name, config.overrides)
        context.log.info("running %s", " ".join(command))
        return pipes.run(command=command, context=context, cwd=str(project.path),
                         env=project.env()).get_materialize_result()

    return _run


def build_assets(params_tree: dict) -> list:
    """The asset graph for a project's params (inputs wired to the stages whose outputs hold them)."""
    stages = all_stages()
    asset_of = {s.name: s.asset for s in stages}
    graph = upstream(params_tree)
    return [stage_asset(s, [asset_of[u] for u in graph[s.name]]) for s in stages]
