"""What a stage declaration holds, and the view of params a running stage gets.

A stage is declared once, in components/stages/<name>.py, as `STAGE = Stage(...)` next to its `run`,
`metadata` and check functions. The CLI (`cxr <name>`), dvc.yaml and the Dagster definitions are built
from these declarations; tests hold each door to them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

_REF = re.compile(r"\$\{([^}]+)\}")
ITEM = "item"  # ${item}: the current element of a foreach stage


@dataclass(frozen=True)
class Option:
    """A command-line shorthand for one params key: `cxr ingest --workers 4` = `--set ingest.workers=4`."""

    flag: str
    key: str
    type: type = str
    help: str = ""


@dataclass(frozen=True)
class Check:
    """A Dagster asset check; `check_<name>` in the stage module returns {"passed": bool, **metadata}."""

    name: str
    description: str
    blocking: bool = True  # a failure stops every downstream asset in the same run
    warn: bool = False  # report a failure as a warning rather than an error


@dataclass(frozen=True)
class Plot:
    """A DVC plot file (`cache: false`), given as a params reference like "${encoder.loss_plot}"."""

    path: str
    x: str
    y: str


@dataclass(frozen=True)
class Stage:
    name: str  # the CLI subcommand and the DVC stage
    asset: str  # the Dagster asset this stage materializes
    group: str  # Dagster asset group
    description: str
    params: tuple[str, ...]  # the params keys the stage reads, no more (DVC `params:`)
    inputs: tuple[str, ...] = ()  # data it reads, as params references ("${clean.input}")
    outs: tuple[str, ...] = ()  # what it writes (DVC `outs`, cached)
    metrics: tuple[str, ...] = ()  # compact headline figures (DVC `metrics`, not cached)
    plots: tuple[Plot, ...] = ()
    options: tuple[Option, ...] = ()
    checks: tuple[Check, ...] = ()
    # outputs that hold PHI by design (raw reports, DICOM headers): `push: false`, they stay on this machine
    private: bool = False
    extra_commands: tuple[str, ...] = ()  # names of other CLI verbs the module offers (`cxr variants review`)
    # A params reference to a list ("${evaluate.ablation}"): one DVC stage `name@item` (DVC foreach), one
    # Dagster asset `<asset>_<item>` and `cxr <name> ITEM` per item; paths may use ${item}.
    foreach: str = ""

    def refs(self) -> set[str]:
        """Every params key the declaration's paths refer to."""
        texts = [*self.inputs, *self.outs, *self.metrics, *(p.path for p in self.plots)]
        # Not the foreach list: DVC expands it into stages; an arm does not re-run when another is added.
        return {m for t in texts for m in _REF.findall(t)} - {ITEM}

    def items(self, tree: dict) -> list[str]:
        """The foreach items under a params tree ([""] for a plain stage)."""
        if not self.foreach:
            return [""]
        node = tree
        for key in _REF.fullmatch(self.foreach).group(1).split("."):
            node = node[key]
        return [str(item) for item in node]

    def instance(self, item: str) -> str:
        """The DVC stage name of one item (`ablation@minilm`), or the plain name."""
        return f"{self.name}@{item}" if item else self.name


def resolve(template: str, tree: dict, item: str = "") -> str:
    """DVC's ${section.key} interpolation against a params tree (and ${item} of a foreach stage)."""
    def value(match):
        if match.group(1) == ITEM:
            return item
        node = tree
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)
    return _REF.sub(value, template)


def _covered(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allowed)


class ScopedParams:
    """Read-only view of Params that lets a stage read only the keys its declaration lists, so that
    DVC re-runs the stage exactly when something it reads changes. Reading any other key is an error."""

    def __init__(self, params, allowed: tuple[str, ...], prefix: str = ""):
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_allowed", allowed)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        key = f"{self._prefix}.{name}" if self._prefix else name
        value = getattr(self._params, name)
        if _covered(key, self._allowed):
            return value
        if any(a.startswith(key + ".") for a in self._allowed):
            return ScopedParams(value, self._allowed, key)
        raise AttributeError(f"this stage reads params key {key!r} but its declaration does not list it "
                             "(components/stages/): add it, so DVC re-runs the stage when it changes")

    def __setattr__(self, name, value):
        raise AttributeError("params are read-only inside a stage")

    def digest(self) -> str:
        """Short hash of the listed keys' values, recorded next to outputs for traceability."""
        picked = {key: _dump(_get(self._params, key)) for key in sorted(self._allowed)}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]

    def values(self) -> dict:
        return {key: _dump(_get(self._params, key)) for key in sorted(self._allowed)}


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _dump(value):
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value
