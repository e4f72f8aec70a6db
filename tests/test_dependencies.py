"""The installed environment serves Dagster's selection parser and DVC's hydra together (one antlr runtime)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline import _project

BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow  # materializes through the Dagster CLI end to end
@pytest.mark.timeout(300)
def test_dagster_cli_materializes_a_selection(tmp_path):
    """`dagster asset materialize --select` parses its selection (antlr >= 4.10) and runs the stage."""
    root = _project(tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["synth"].update(image_size=96)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    result = _run([str(BIN / "dagster"), "asset", "materialize", "-m", "orchestration.definitions",
                   "--select", 'key:"raw_studies" or key:"nothing_else"'], cwd=root,
                  env={"CXR_PROJECT_ROOT": str(root), "DAGSTER_HOME": str(dagster_home),
                       "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert "RUN_SUCCESS" in result.stdout + result.stderr
    assert json.loads((root / "data/metrics/synth.json").read_text())["studies"] == 24
    assert not (root / "data/ingested").exists()  # only the selection ran


def test_dvc_params_diff_and_exp_run_overrides(tmp_path):
    """`dvc params diff` works, and `dvc exp run -S` overrides parse (hydra's grammar on the same runtime)."""
    from dvc.utils.hydra import apply_overrides

    root = _project(tmp_path / "project")
    _run(["git", "init", "-q"], root)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"], root)
    _run([str(BIN / "dvc"), "init", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "project"], root)
    # exactly what `dvc exp run -S ingest.resolution=32 -S clean.quality.split_bounds.val=[0,0.5]` does first
    apply_overrides(str(root / "params.yaml"), ["ingest.resolution=32", "clean.quality.split_bounds.val=[0,0.5]"])
    diff = json.loads(_run([str(BIN / "dvc"), "params", "diff", "--json"], root).stdout)["params.yaml"]
    assert (diff["ingest.resolution"]["old"], diff["ingest.resolution"]["new"]) == (64, 32)
    assert str(diff["clean.quality.split_bounds.val"]["new"]).replace(" ", "") == "[0,0.5]"
