"""One asset per pipeline stage, built from the stage declarations (components/stages).

In a DVC project (`dvc init` done, dvc.yaml present) an asset runs its stage through DVC
(`dvc repro --single-item <stage>`, whose cmd is `cxr <stage>`), so a materialization leaves the same
record as `dvc repro`: dvc.lock updated, outputs in the DVC cache. Launchpad overrides run as a DVC
experiment (`dvc exp run -S key=value`): params.yaml in the workspace takes the overridden values and
dvc.lock records them, so no artifact is attributed to params it was not built with. The Pipes
environment passes through DVC to `cxr`, so the stage's metadata still reaches Dagster. The data
version is the DVC hash of the stage's outs, the code version the hash of its code deps.

Without DVC (a scratch project) the asset runs `cxr <stage>` directly and says that nothing was recorded.
"""

from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, PipesSubprocessClient, asset
from pydantic import Field

from components.lineage import outs_version
from components.stages import Stage, instances, upstream
from components.stages.base import resolve
from components.stages.code import code_version
from orchestration.resources import CxrProject


class StageConfig(Config):
    """Launchpad overrides for this run, as `section.key: value` (same as `cxr ... --set`). In a DVC
    project they run as `dvc exp run -S section.key=value`: params.yaml takes these values."""

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
           kinds={"python", "dvc"}, tags=tags, code_version=code_version(stage.name))
    def _run(context: AssetExecutionContext, config: StageConfig, pipes: PipesSubprocessClient,
             project: CxrProject):
        tracked = project.dvc_tracked()
        command = project.command(stage.name, config.overrides, item)
        context.log.info("running %s", " ".join(command))
        with project.dvc_lock():
            reported = pipes.run(command=command, context=context, cwd=str(project.path),
                                 env=project.env()).get_materialize_result()
        metadata = dict(reported.metadata or {})
        if not tracked:
            context.log.warning("%s is not a DVC project: this materialization is not recorded in dvc.lock",
                                project.path)
            metadata["lineage"] = f"not recorded: no DVC project in {project.path} (`dvc init` to record)"
            return MaterializeResult(metadata=metadata, check_results=reported.check_results)
        outs = [resolve(o, project.params_tree(), item) for o in stage.outs]
        version = outs_version(project.path, stage.instance(item), outs)
        if version is None:
            raise RuntimeError(f"DVC ran stage {stage.name!r} but dvc.lock does not record its outputs {outs}")
        metadata.update(lineage="dvc.lock", dvc_outs_md5=version, dvc_command=" ".join(command[1:]))
        if "params_hash" not in metadata:  # DVC found the stage unchanged and did not run it
            metadata["dvc_skipped"] = "up to date: DVC did not re-run the stage (`dvc status` clean)"
        return MaterializeResult(metadata=metadata, check_results=reported.check_results,
                                 data_version=DataVersion(version))

    return _run


def build_assets(params_tree: dict) -> list:
    """The asset graph for a project's params (inputs wired to the stages whose outputs hold them)."""
    nodes = instances(params_tree)
    asset_of = {s.instance(i): asset_name(s, i) for s, i in nodes}
    graph = upstream(params_tree)
    return [stage_asset(s, [asset_of[u] for u in graph[s.instance(i)]], i) for s, i in nodes]
