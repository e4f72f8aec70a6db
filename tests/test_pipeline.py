"""The three doors agree: DVC stages, Dagster assets and the CLI run the same stages on real data.
Each test here materializes a tiny project end to end: marked slow (`pytest -m "not slow"` skips them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, small_params_tree

pytestmark = pytest.mark.slow


def _project(root: Path) -> Path:
    """A project checkout in `root` with small params writing inside it (relative paths, like the repo)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("components", "serving"):  # every stage's code deps (the package stage's include serving/)
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    tree = small_params_tree(Path("data"))
    tree["synth"]["n_studies"] = 24
    tree["audit"]["dagster_home"] = True  # a Dagster run's event storage is audited too
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return root


def _resources(root: Path) -> dict:
    from dagster import PipesSubprocessClient

    from orchestration.resources import CxrProject

    return {"pipes": PipesSubprocessClient(), "project": CxrProject(root=str(root))}


def _assets(resources: dict, names: tuple[str, ...] | None = None) -> list:
    """The named assets, or every asset up to the CLIP model: the evaluation group needs a test split that
    these 24-study projects lack; tests/test_evaluation_stage.py runs it on the 48-study profile."""
    from orchestration.assets import build_assets

    assets = build_assets(resources["project"].params_tree())
    return [a for a in assets if a.key.to_user_string() in names] if names is not None else \
        [a for a in assets if a.group_names_by_key[a.key] != "evaluation"]


def _checks(*names: str) -> list:
    from orchestration.checks import checks

    return [c for c in checks if not names or c.check_key.name in names]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.timeout(900)
def test_dvc_repro_runs_stages_and_tracks_changes(tmp_path):
    root = _project(tmp_path / "project")
    _run(["git", "init", "-q"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["dvc", "config", "core.analytics", "false"], root)
    _run(["dvc", "repro", "clip"], root)  # the evaluation stages: tests/test_evaluation_stage.py

    summary = json.loads((root / "data/ingested/summary.json").read_text())
    assert summary["studies"]["in"] == 24 and summary["conservation_ok"]
    assert summary["traps"]["all_accounted"]
    shown = _run(["dvc", "metrics", "show", "--json"], root).stdout
    # stages after clip have not run here: their metrics files are reported missing, not read
    metrics = {Path(path).stem: m["data"] for path, m in json.loads(shown)[""]["data"].items() if "data" in m}
    assert metrics["ingest"]["conservation_ok"] and metrics["ingest"]["traps_all_accounted"]
    assert metrics["synth"]["studies"] == 24 and metrics["clean"]["gx_success"]
    assert metrics["variants"]["accepted"] > 0
    plots = _run(["dvc", "plots", "show", "--json"], root).stdout
    assert "encoder_loss.json" in plots and '"loss"' in plots
    missing = [e["name"] for e in json.loads(plots).get("errors", [])]  # only the stages after clip's plots
    assert all(name.startswith(("data/ablation/", "data/eval/")) for name in missing), missing
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    # audit-phi follows the evaluation, which needs a test split this 24-study project lacks: the
    # Dagster test below runs the audit, tests/test_evaluation_stage.py the evaluation through DVC
    assert set(lock["stages"]) == {"synth", "ingest", "clean", "variants", "encoder", "baselines", "embed", "clip"}
    assert lock["stages"]["ingest"]["params"]["params.yaml"]["ingest"]["resolution"] == 64

    assert "didn't change" in _run(["dvc", "repro", "clip"], root).stdout  # nothing to do

    def stale_after(change) -> set[str]:
        params = yaml.safe_load((root / "params.yaml").read_text())
        change(params)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        out = _run(["dvc", "repro", "--dry", "clip"], root).stdout
        return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}

    # exactly the stages that read a changed key are stale (embed follows once the encoder's output changes)
    assert stale_after(lambda p: p["baselines"].update(mlm_lr=0.0004)) == {"baselines"}
    assert stale_after(lambda p: p["encoder"]["contrastive"].update(temperature=0.07)) == {"baselines", "encoder"}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["baselines"]["mlm_lr"] = 0.0005
    params["encoder"]["contrastive"]["temperature"] = 0.05
    params["ingest"]["resolution"] = 32
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], root).stdout
    stale = {line.rstrip(":") for line in status.splitlines() if line and not line[0].isspace()}
    assert "ingest" in stale and "synth" not in stale  # the changed stage, not its upstream
    _run(["dvc", "repro", "ingest"], root)
    index = pd.read_parquet(root / "data/ingested/images.parquet")
    shard = np.load(root / "data/ingested/images" / index["shard"].iloc[0], mmap_mode="r")
    assert shard.shape[1:] == (32, 32)


@pytest.mark.timeout(900)
def test_dagster_materializes_assets_with_metadata_and_checks(tmp_path):
    from dagster import materialize

    root = _project(tmp_path / "project")
    resources = _resources(root)
    result = materialize(
        [*_assets(resources), *_checks()], resources=resources,
        run_config={"ops": {"raw_studies": {"config": {"overrides": {"synth.n_studies": "30"}}}}},
    )
    assert result.success
    metadata = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}
    assert metadata["raw_studies"]["studies"].value == 30  # the launchpad override reached the CLI
    ingested = metadata["ingested_studies"]
    assert ingested["studies_in"].value == 30
    assert ingested["studies_in"].value == ingested["studies_out"].value + ingested["studies_quarantined"].value
    assert "| reason |" in ingested["quarantine_reasons"].value
    assert ingested["preview"].value.startswith("![ingested images](data:image/png;base64,")
    assert len(ingested["params_hash"].value) == 12 and ingested["code_version"].value
    checks_run = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks_run == {"ingest_conservation": True, "ingest_traps_accounted": True,
                          "clean_quality_suite": True, "clean_phi_free": True, "clean_conservation": True,
                          "variants_acceptance": True, "phi_audit_zero_leaks": True}
    assert metadata["text_encoder"]["contrastive_loss"].value.startswith("![loss](data:image/png;base64,")
    assert metadata["text_embeddings"]["encoded"].value > 0
    assert "R@1 after" in metadata["baseline_encoders"]["evaluation"].value
    variants = metadata["report_variants"]
    assert variants["accepted"].value > 0 and "```diff" in variants["examples"].value
    assert metadata["clean_reports"]["gx_success"].value is True
    assert "| i2t_r5 |" in metadata["clip_model"]["validation_retrieval"].value

    # the blocking conservation check recounts the written tables: drop a quarantine row and it fails
    quarantine = root / "data/ingested/quarantine.parquet"
    pd.read_parquet(quarantine).iloc[1:].to_parquet(quarantine)
    (conservation,) = _checks("ingest_conservation")
    assert conservation(project=resources["project"]).passed is False


@pytest.mark.timeout(900)
def test_failing_blocking_check_stops_downstream_assets(tmp_path):
    """A real run: when the GX or PHI check on clean_reports fails, a downstream asset does not run."""
    from dagster import asset, materialize

    root = _project(tmp_path / "project")
    resources = _resources(root)
    assert materialize(_assets(resources, ("raw_studies", "ingested_studies")), resources=resources).success
    (clean_asset,) = _assets(resources, ("clean_reports",))
    clean_checks = _checks("clean_quality_suite", "clean_phi_free", "clean_conservation")
    ran = []

    @asset(deps=["clean_reports"])
    def downstream():
        ran.append(True)

    def run(overrides: dict) -> dict:
        ran.clear()
        result = materialize([clean_asset, *clean_checks, downstream], resources=resources, raise_on_error=False,
                             run_config={"ops": {"clean_reports": {"config": {"overrides": overrides}}}})
        return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}

    # every real report is longer: GX fails; non-blocking in the CLI, so Dagster's check is what stops
    checks = run({"clean.quality.max_chars": "30", "clean.quality.blocking": "false"})
    assert checks["clean_quality_suite"] is False and checks["clean_phi_free"] is True and not ran
    checks = run({"clean.quality.max_chars": "30"})  # blocking in the CLI too: the asset itself fails
    assert checks == {} and not ran
    checks = run({"clean.phi_policy": "off", "clean.quality.blocking": "false"})  # PHI reaches the output: both gates fail
    assert False in checks.values() and not ran
    (phi_free,) = _checks("clean_phi_free")
    assert phi_free(project=resources["project"]).passed is False  # the PHI gate on its own
    checks = run({})
    assert all(checks.values()) and ran == [True]
