"""The pipeline's stages in run order, each declared once in components/stages/<name>.py.

Adding a stage: write its module (STAGE, run, metadata, check_* functions), add its name to ORDER,
then `cxr stages --write-dvc` regenerates dvc.yaml; the CLI and Dagster pick it up by themselves.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from components.stages.base import Check, Option, Plot, ScopedParams, Stage

__all__ = ["ORDER", "Check", "Option", "Plot", "ScopedParams", "Stage", "all_stages", "instances", "module",
           "upstream"]

ORDER = ("synth", "ingest", "clean", "variants", "encoder", "baselines", "embed", "clip", "ablation", "evaluate",
         "package", "audit-phi")


def module(name: str) -> ModuleType:
    if name not in ORDER:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(ORDER)}")
    return importlib.import_module(f"components.stages.{module_name(name)}")


def module_name(name: str) -> str:
    """Stage names may read like commands (`audit-phi`); their modules are identifiers (audit_phi)."""
    return name.replace("-", "_")


def all_stages() -> list[Stage]:
    return [module(name).STAGE for name in ORDER]


def instances(tree: dict) -> list[tuple[Stage, str]]:
    """(stage, item) for every DVC stage under a params tree, in run order (item "" for a plain stage)."""
    return [(s, item) for s in all_stages() for item in s.items(tree)]


def upstream(tree: dict) -> dict[str, list[str]]:
    """DVC stage (`name` or `name@item`) -> the stages whose outputs overlap one of its inputs (an input
    inside an output, or an output inside an input folder), for a params tree, as DVC resolves it."""
    from components.stages.base import resolve

    nodes = instances(tree)
    outs = {s.instance(i): [resolve(o, tree, i).rstrip("/") for o in s.outs] for s, i in nodes}
    graph = {}
    for s, item in nodes:
        ins = [resolve(x, tree, item).rstrip("/") for x in s.inputs]
        graph[s.instance(item)] = [o for o in outs if o != s.instance(item) and any(
            x == p or x.startswith(p + "/") or p.startswith(x + "/") for p in outs[o] for x in ins)]
    return graph
