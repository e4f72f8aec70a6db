"""The base of every params section: unknown keys are errors, and YAML 1.2 booleans only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

DEFAULT_PARAMS = Path("params.yaml")


class _Yaml12BoolLoader(yaml.SafeLoader):
    """YAML with only true/false as booleans: `phi_policy: off` must stay the string "off"."""


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str):
    return yaml.load(text, Loader=_Yaml12BoolLoader)  # noqa: S506 - a SafeLoader subclass


class _Section(BaseModel):
    # Unknown keys are errors: a typo in --set must not be silently ignored.
    model_config = ConfigDict(extra="forbid")
