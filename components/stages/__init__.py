"""The pipeline's stages in run order, each declared once in components/stages/<name>.py.

Adding a stage: write its module (STAGE, run, metadata, check_* functions), add its name to ORDER,
then `cxr stages --write-dvc` regenerates dvc.yaml; the CLI and Dagster pick it up by themselves.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from components.stages.base import Check, Option, Plot, ScopedParams, Stage

__all__ = ["ORDER", "Check", "Option", "Plot", "ScopedParams", "Stage", "all_stages", "module", "upstream"]

ORDER = ("synth", "ingest", "clean", "variants", "encoder", "baselines", "embed", "clip", "audit-phi")


def module(name: str) -> ModuleType:
    if name not in ORDER:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(ORDER)}")
    return importlib.import_module(f"components.stages.{module_name(name)}")


def module_name(name: str) -> str:
    """Stage names may read like commands (`audit-phi`); their modules are identifiers (audit_phi)."""
    return name.replace("-", "_")


def all_stages() -> list[Stage]:
    return [module(name).STAGE for name in ORDER]


def upstream(tree: dict) -> dict[str, list[str]]:
    """Stage -> the stages whose outputs hold one of its inputs, for a params tree (as DVC resolves it)."""
    from components.stages.base import resolve

    stages = all_stages()
    outs = {s.name: [resolve(o, tree).rstrip("/") for o in s.outs] for s in stages}
    graph = {}
    for s in stages:
        ins = [resolve(i, tree).rstrip("/") for i in s.inputs]
        graph[s.name] = [o for o in ORDER if o != s.name and o in outs
                         and any(i == p or i.startswith(p + "/") for p in outs[o] for i in ins)]
    return graph
