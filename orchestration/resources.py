"""Where the project lives and how a stage's command is built: through DVC in a DVC project
(`dvc repro --single-item <stage>`, or `dvc exp run -S` with overrides), else `cxr <stage>` itself."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml
from dagster import ConfigurableResource


class CxrProject(ConfigurableResource):
    """A checkout holding params.yaml and dvc.yaml; stage outputs land under its data/."""

    root: str = "."
    params_file: str = "params.yaml"

    @property
    def path(self) -> Path:
        return Path(self.root).resolve()

    def params(self):
        from components.params import load_params

        return load_params(self.path / self.params_file)

    def params_tree(self) -> dict:
        file = self.path / self.params_file
        return yaml.safe_load(file.read_text()) if file.exists() else {}

    def dvc_tracked(self) -> bool:
        from components.lineage import dvc_project

        return dvc_project(self.path)

    def command(self, stage: str, overrides: dict[str, str] | None = None, item: str = "") -> list[str]:
        """The stage's command (with its foreach item): through DVC when the project has it, else
        `cxr <stage> [item]` with this run's params file and --set overrides."""
        if self.dvc_tracked():
            if self.params_file != "params.yaml":
                raise ValueError(f"params_file={self.params_file!r}: dvc.yaml's stages read params.yaml, so DVC "
                                 "would record other params than the run used; use params.yaml or overrides")
            dvc, target = _tool("dvc"), f"{stage}@{item}" if item else stage
            if not overrides:
                return [dvc, "repro", "--single-item", target]
            sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]
            return [dvc, "exp", "run", "--single-item", *sets, target]
        argv = self.cli(stage, *([item] if item else []))
        for key, value in (overrides or {}).items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def cli(self, *args: str) -> list[str]:
        """`cxr ARGS` with this project's params file."""
        return [_tool("cxr"), *args, *(["--params", self.params_file] if self.params_file != "params.yaml" else [])]

    def env(self) -> dict[str, str]:
        # DVC runs `cxr` from PATH: put this interpreter's environment first
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}

    @contextmanager
    def dvc_lock(self):
        """One DVC command at a time in this project (DVC's own lock fails rather than waits), so assets
        run in parallel by Dagster's multiprocess executor queue here instead."""
        if not self.dvc_tracked():
            yield
            return
        tmp = self.path / ".dvc" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        with open(tmp / "cxr-dagster.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _tool(name: str) -> str:
    """A console script of this interpreter's environment (the venv's), even when it is off PATH."""
    own = Path(sys.executable).with_name(name)
    return str(own) if own.exists() else (shutil.which(name) or name)
