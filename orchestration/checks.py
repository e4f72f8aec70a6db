"""Asset checks from the stage declarations: each calls `check_<name>` of its stage module, which reads
the stage's written output, not what the stage said about it."""


from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from components.stages import Check, Stage, all_stages, module
from orchestration.resources import CxrProject


def _metadata(value):
    if isinstance(value, dict) and set(value) == {"raw_value", "type"}:
        return MetadataValue.path(value["raw_value"]) if value["type"] == "path" else MetadataValue.json(value["raw_value"])
    return MetadataValue.json(value) if isinstance(value, (dict, list)) else value


def stage_check(stage: Stage, check: Check):
    @asset_check(asset=stage.asset, name=check.name, blocking=check.blocking, description=check.description)
    def _check(project: CxrProject) -> AssetCheckResult:
        result = getattr(module(stage.name), f"check_{check.name}")(project.params(), project.path)
        passed = bool(result.pop("passed"))
        return AssetCheckResult(passed=passed, metadata={k: _metadata(v) for k, v in result.items()},
                                severity=AssetCheckSeverity.WARN if check.warn else AssetCheckSeverity.ERROR)

    return _check


checks = [stage_check(s, c) for s in all_stages() for c in s.checks]
