"""Typed view of params.yaml: one pydantic model per stage section (defaults = the committed demo
profile, held equal by a test), loaded with command-line overrides. The sections live in data.py,
text.py, clip.py and evaluation.py; everything is importable from here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from components.params.base import DEFAULT_PARAMS, _load_yaml, _Section
from components.params.clip import *  # noqa: F403
from components.params.clip import ClipParams
from components.params.data import *  # noqa: F403
from components.params.data import CleanParams, IngestParams, SynthParams
from components.params.evaluation import *  # noqa: F403
from components.params.evaluation import AuditParams, EvaluateParams, PackageParams, ServeParams
from components.params.text import *  # noqa: F403
from components.params.text import BaselinesParams, EmbedParams, EncoderParams, VariantsParams


class Params(_Section):
    synth: SynthParams = SynthParams()
    ingest: IngestParams = IngestParams()
    clean: CleanParams = CleanParams()
    variants: VariantsParams = VariantsParams()
    encoder: EncoderParams = EncoderParams()
    baselines: BaselinesParams = BaselinesParams()
    embed: EmbedParams = EmbedParams()
    clip: ClipParams = ClipParams()
    evaluate: EvaluateParams = EvaluateParams()
    audit: AuditParams = AuditParams()
    package: PackageParams = PackageParams()
    serve: ServeParams = ServeParams()

    def digest(self, section: str) -> str:
        """Short hash of one section, recorded next to outputs for traceability."""
        blob = json.dumps(getattr(self, section).model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def apply_override(tree: dict, assignment: str) -> None:
    """Apply one `section.key=value` override in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ValueError(f"--set expects section.key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    if len(keys) < 2 or not all(keys):
        raise ValueError(f"--set key must look like section.key, got {dotted!r}")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {dotted}: {key!r} is not a section")
    node[keys[-1]] = _load_yaml(raw)


def read_params_file(file: Path) -> dict:
    """The YAML mapping in `file`; anything else is a ValueError naming the file and the problem."""
    if file.is_dir():
        raise ValueError(f"params file {file} is a folder; pass a YAML file")
    try:
        tree = _load_yaml(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"params file {file} is not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"params file {file} is not valid YAML{where}: "
                         f"{getattr(e, 'problem', None) or e}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ValueError(f"params file {file} must map section names to settings, "
                         f"but holds a {type(tree).__name__}")
    return tree


def overlay_assignments(path: str | Path) -> list[str]:
    """A partial params file (a profile such as params/bench.yaml) as `section.key=value` assignments, one
    per leaf, checked against the params model: what `--set` and `dvc exp run -S` take."""
    tree = _load_yaml(Path(path).read_text()) or {}
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: a profile is a mapping of params sections")
    out: list[str] = []

    def walk(node, keys):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, [*keys, str(key)])
        else:
            out.append(f"{'.'.join(keys)}={json.dumps(node)}")
    walk(tree, [])
    load_params(DEFAULT_PARAMS if DEFAULT_PARAMS.exists() else None, out)  # unknown keys fail here, not in DVC
    return out


def load_params(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read params.yaml (or `path`), apply overrides, validate. A missing default file means defaults."""
    file = Path(path) if path else DEFAULT_PARAMS
    if path and not file.exists():
        raise FileNotFoundError(f"params file not found: {file}")
    tree = read_params_file(file) if file.exists() else {}
    for assignment in overrides:
        apply_override(tree, assignment)
    return Params.model_validate(tree)
