"""Where the project lives and how a stage's command is built: from dvc.yaml, never re-typed."""

from __future__ import annotations

import os
import shlex
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

    def command(self, dvc_stage: str, overrides: dict[str, str] | None = None) -> list[str]:
        """The DVC stage's `cmd`, plus this run's params file and --set overrides."""
        stages = yaml.safe_load((self.path / "dvc.yaml").read_text())["stages"]
        argv = shlex.split(stages[dvc_stage]["cmd"])
        if argv[0] == "cxr":  # the venv's script, even when its bin/ is not on PATH
            argv[0] = shutil.which("cxr") or str(Path(sys.executable).with_name("cxr"))
        if self.params_file != "params.yaml":
            argv += ["--params", self.params_file]
        for key, value in (overrides or {}).items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}
