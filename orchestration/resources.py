"""Where the project lives and how a stage's command is built (`cxr <stage>`, as in dvc.yaml)."""

from __future__ import annotations

import os
import shutil
import sys
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

    def command(self, stage: str, overrides: dict[str, str] | None = None, item: str = "") -> list[str]:
        """The stage's command (with its foreach item), plus this run's params file and --set overrides."""
        cxr = shutil.which("cxr") or str(Path(sys.executable).with_name("cxr"))  # the venv's, even off PATH
        argv = [cxr, stage, *([item] if item else [])]
        if self.params_file != "params.yaml":
            argv += ["--params", self.params_file]
        for key, value in (overrides or {}).items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}
