"""A stage's code dependencies, from the import graph: the modules its module imports (at any depth,
lazy imports included) and the data files those packages read. dvc.yaml lists exactly these, so a
change re-runs exactly the stages whose code it touches; their hash is the stage's code version."""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Machinery shared by every stage that cannot change what a stage writes: the declarations themselves,
# the params schema (DVC tracks the values each stage reads, and params.yaml holds every key), and the
# Dagster metadata channel.
NOT_CODE = {"components/stages/__init__.py", "components/stages/base.py", "components/stages/code.py",
            "components/pipes.py", "components/__init__.py"}
NOT_CODE_DIRS = ("components/params/",)  # the params schema, all of it
DATA_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".csv")
PACKAGES = ("components", "serving")  # the project's code a stage can import (serving: the package stage)


def _file_of(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=None)
def _parse(path: Path) -> tuple[tuple[str, ...], frozenset[str]]:
    """(project modules imported anywhere in `path`, lazy imports included; its string constants)."""
    found, strings = [], set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
    return tuple(n for n in found if n.split(".")[0] in PACKAGES), frozenset(strings)


def _data_files(module: Path) -> list[Path]:
    """Data a module reads: the data folders of its package (non-package subfolders) and the data files
    beside it that it names (`Path(__file__).parent / "data"`, `load("errors.yaml")`)."""
    named = _parse(module)[1]
    found = []
    for path in module.parent.iterdir():
        if path.is_dir() and path.name in named and not (path / "__init__.py").exists():
            found.append(path)
        elif path.is_file() and path.suffix in DATA_SUFFIXES and path.name in named:
            found.append(path)
    return found


def _not_code(rel: str) -> bool:
    return rel in NOT_CODE or rel.startswith(NOT_CODE_DIRS)


def code_deps(stage: str) -> list[str]:
    """Repository-relative paths of every source and data file stage `stage` depends on, sorted."""
    seen: set[Path] = set()
    todo: list[Path | None] = [_file_of(f"components.stages.{stage.replace('-', '_')}")]
    while todo:
        path = todo.pop()
        if path is None or path in seen or _not_code(path.relative_to(ROOT).as_posix()):
            continue
        seen.add(path)
        todo += [_file_of(name) for name in _parse(path)[0]]
        parent = path.parent / "__init__.py"  # importing a.b.c runs a/__init__.py and a/b/__init__.py
        if parent.exists() and parent != path:
            todo.append(parent)
    files = seen | {d for p in seen for d in _data_files(p)}
    rel = {p.relative_to(ROOT).as_posix() for p in files}
    return sorted(r for r in rel if not _not_code(r))


def code_version(stage: str) -> str:
    h = hashlib.sha256()
    for rel in code_deps(stage):
        path = ROOT / rel
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                h.update(file.relative_to(ROOT).as_posix().encode())
                h.update(file.read_bytes())
    return h.hexdigest()[:12]
